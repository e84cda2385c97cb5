#include "data/pretokenize.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace gpuml::data {

namespace {

enum class CharClass : uint8_t { letter, number, space, other };

struct Char {
  size_t bytes = 1;  // 1 for a byte that is not UTF-8 (the byte-level fallback)
  CharClass cls = CharClass::other;
  bool is_ascii_space = false;  // U+0020, the optional prefix of the letter/number/other runs
};

// The code point of the valid UTF-8 sequence at text[i], with its length; length 0 when the bytes
// there are not UTF-8.
std::pair<int32_t, size_t> decode(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return {lead, 1};
  const size_t length = lead >= 0xF0 && lead <= 0xF4  ? 4
                        : lead >= 0xE0 && lead < 0xF0 ? 3
                        : lead >= 0xC2 && lead < 0xE0 ? 2
                                                      : 0;
  if (length == 0 || i + length > text.size()) return {0, 0};
  int32_t cp = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    const unsigned char c = byte(i + k);
    if ((c & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr std::array<int32_t, 5> kSmallest = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, length};
}

CharClass classify(int32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85) return CharClass::space;
  if (cp < 0x80) {  // the common case without a table look-up
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::letter;
    if (cp >= '0' && cp <= '9') return CharClass::number;
    return CharClass::other;
  }
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::letter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::number;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return CharClass::space;
    default:
      return CharClass::other;
  }
}

Char char_at(std::string_view text, size_t i) {
  auto [cp, length] = decode(text, i);
  if (length == 0) return {};  // an invalid byte: one "other" character
  return {length, classify(cp), cp == 0x20};
}

// The end of the piece that starts at `i` (the alternatives of the pattern in the header, in
// order).
size_t piece_end(std::string_view text, size_t i) {
  const size_t n = text.size();
  if (text[i] == '\'' && i + 1 < n) {  // 's 't 're 've 'm 'll 'd
    const char c = text[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if (i + 2 < n) {
      const std::string_view two = text.substr(i + 1, 2);
      if (two == "re" || two == "ve" || two == "ll") return i + 3;
    }
  }
  const Char first = char_at(text, i);
  // " ?X+" for X = letters, numbers, other: the optional space, then a run of one class.
  size_t run = i;
  CharClass cls = first.cls;
  if (first.is_ascii_space && i + 1 < n) {
    const Char next = char_at(text, i + 1);
    if (next.cls != CharClass::space) {
      run = i + 1;
      cls = next.cls;
    }
  }
  if (cls != CharClass::space) {
    size_t end = run;
    while (end < n) {
      const Char c = char_at(text, end);
      if (c.cls != cls) break;
      end += c.bytes;
    }
    return end;
  }
  // "\s+(?!\S)|\s+": a run of whitespace, less its last character when something else follows
  // (that character then prefixes the next word, as in " world").
  size_t end = i, last = i;
  while (end < n) {
    const Char c = char_at(text, end);
    if (c.cls != CharClass::space) break;
    last = end;
    end += c.bytes;
  }
  if (end == n || last == i) return end;
  return last;
}

}  // namespace

size_t split_pretokens(std::string_view text, bool at_end,
                       const std::function<void(std::string_view)>& on_piece) {
  if (at_end) {
    for (size_t i = 0; i < text.size();) {
      const size_t end = piece_end(text, i);
      on_piece(text.substr(i, end - i));
      i = end;
    }
    return text.size();
  }
  // In a chunk, the last two pieces wait for the next one: the last may go on past the chunk, and
  // the one before it may be an apostrophe that the next chunk's "re", "ve" or "ll" would join.
  std::array<size_t, 2> held{};  // starts of the last two pieces found
  size_t found = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t end = piece_end(text, i);
    if (found >= 2) on_piece(text.substr(held[0], held[1] - held[0]));
    held = {held[1], i};
    ++found;
    i = end;
  }
  if (found == 0) return 0;
  return found == 1 ? held[1] : held[0];
}

size_t utf8_safe_end(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return length > back ? n - back : n;  // a lead whose sequence the chunk cuts: end before it
  }
  return n;
}

size_t first_invalid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto [cp, length] = decode(text, i);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const size_t length = decode(bytes, i).second;
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(bytes.substr(i, length));
      i += length;
    }
  }
  return out;
}

void split_specials(std::string_view text, const std::vector<std::string>& specials,
                    const std::function<void(std::string_view)>& on_text,
                    const std::function<void(size_t)>& on_special) {
  // Each special's next occurrence at or after `from` (npos: none left), found again only once
  // passed, so that a rare special is not searched for from every occurrence of a common one.
  constexpr size_t kUnknown = std::string_view::npos - 1;
  std::vector<size_t> next(specials.size(), kUnknown);
  size_t from = 0;
  while (true) {
    size_t best = std::string_view::npos, best_length = 0, which = 0;
    for (size_t k = 0; k < specials.size(); ++k) {
      if (specials[k].empty()) continue;
      if (next[k] == kUnknown || (next[k] != std::string_view::npos && next[k] < from))
        next[k] = text.find(specials[k], from);
      if (next[k] == std::string_view::npos) continue;
      if (next[k] < best || (next[k] == best && specials[k].size() > best_length))
        best = next[k], best_length = specials[k].size(), which = k;
    }
    if (best == std::string_view::npos) {
      on_text(text.substr(from));
      return;
    }
    on_text(text.substr(from, best - from));
    on_special(which);
    from = best + best_length;
  }
}

PretokenStreamReport stream_pretokens(
    const std::string& path, bool allow_invalid_utf8,
    const std::function<void(std::string_view, int64_t)>& on_piece,
    const std::function<void(int64_t, int64_t)>& on_read, const std::vector<std::string>& specials,
    const std::function<void(size_t, int64_t)>& on_special) {
  namespace fs = std::filesystem;
  constexpr size_t kChunkBytes = size_t{1} << 20;
  constexpr size_t kMaxCarryBytes = size_t{4} << 20;
  GPUML_CHECK_KIND(ErrorKind::Io, fs::is_regular_file(path), "{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "{}: cannot open the file", path);
  const auto size = static_cast<int64_t>(fs::file_size(path));
  GPUML_CHECK_KIND(ErrorKind::Io, size > 0, "{}: the corpus is empty", path);
  PretokenStreamReport report;
  std::string data;               // the carried bytes, then the new chunk
  int64_t data_offset = 0;        // where data[0] is in the file
  int64_t read = 0, checked = 0;  // bytes before `checked` were checked for UTF-8 already
  std::vector<char> chunk(kChunkBytes);
  while (true) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<size_t>(in.gcount());
    GPUML_CHECK_KIND(ErrorKind::Io, got > 0 || in.eof(), "{}: read error at byte {}", path, read);
    read += static_cast<int64_t>(got);
    const bool at_end = got == 0 || read >= size;
    data.append(chunk.data(), got);
    size_t usable = at_end ? data.size() : utf8_safe_end(data);
    // Not the start of a special that the next chunk may complete: it waits for that chunk.
    for (size_t k = 0; !at_end && k < specials.size(); ++k) {
      if (specials[k].empty()) continue;
      for (size_t length = std::min(specials[k].size() - 1, usable); length > 0; --length)
        if (std::string_view(data).substr(usable - length, length) ==
            std::string_view(specials[k]).substr(0, length)) {
          usable -= length;
          break;
        }
    }
    for (size_t from = 0;
         from < usable;) {  // a carry is checked again (it is small), not counted again
      const size_t bad = first_invalid_utf8(std::string_view(data).substr(from, usable - from));
      if (bad == std::string_view::npos) break;
      const int64_t at = data_offset + static_cast<int64_t>(from + bad);
      GPUML_CHECK_KIND(
          ErrorKind::Io, allow_invalid_utf8,
          "{}: byte {} (0x{:02x}) is not UTF-8. gpuml reads a corpus as UTF-8; with "
          "--allow-invalid-utf8 "
          "such bytes are kept as bytes (byte-level fallback: every byte has a token), though the "
          "`tokenizers` library, which takes Unicode strings, cannot encode that file the same way",
          path, at, static_cast<unsigned char>(data[from + bad]));
      if (at >= checked) ++report.invalid_bytes;
      from += bad + 1;
    }
    checked = data_offset + static_cast<int64_t>(usable);
    const std::string_view view = std::string_view(data).substr(0, usable);
    const auto emit = [&](std::string_view piece) {
      on_piece(piece, data_offset + (piece.data() - data.data()));
    };
    size_t cut = 0;
    if (specials.empty()) {
      cut = split_pretokens(view, at_end, emit);
    } else {  // the text before each special is whole; only the text after the last may go on
      split_specials(
          view, specials,
          [&](std::string_view text) {
            const bool last = text.data() + text.size() == view.data() + view.size();
            cut = static_cast<size_t>(text.data() - view.data()) +
                  split_pretokens(text, at_end || !last, emit);
          },
          [&](size_t which) {
            on_special(which, data_offset + static_cast<int64_t>(cut));
            cut += specials[which].size();
          });
    }
    if (!at_end && data.size() - cut > kMaxCarryBytes)
      cut += split_pretokens(view.substr(cut), true, emit);
    data_offset += static_cast<int64_t>(cut);
    data.erase(0, cut);
    if (on_read) on_read(std::min(read, size), size);
    if (at_end) break;
  }
  report.bytes = read;
  return report;
}

}  // namespace gpuml::data
