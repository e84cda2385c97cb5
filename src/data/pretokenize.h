// GPT-2's pre-tokenizer: text is cut into pieces before BPE runs on each piece, so that merges
// never cross a word boundary. The pieces are what the `tokenizers` library's ByteLevel
// pre-tokenizer (use_regex: true, add_prefix_space: false) cuts, i.e. the leftmost-first matches of
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// written out by hand (no regex engine): letters and numbers are Unicode's general categories L*
// and N* (utf8proc), whitespace is Oniguruma's \s (U+0009-000D, U+0085 and the categories Zs, Zl,
// Zp; checked against `tokenizers` 0.23, which treats U+001C-001F as "other").
//
// Byte-level fallback: a byte that does not start valid UTF-8 counts as one "other" character, so
// any bytes are cut into pieces that join back to them (gpuml's BPE covers every byte).
//
//   std::vector<std::string_view> pieces;
//   data::split_pretokens("Hello  world!", true, [&](std::string_view p) { pieces.push_back(p); });
//   // "Hello", " ", " world", "!"
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gpuml::data {

// Calls on_piece for each piece of `text`, in order; the pieces join back to `text` exactly.
// at_end = false: `text` is a chunk of a longer stream; the last piece (whose end depends on what
// follows) is not passed, and the return value is the byte where it starts: the caller puts
// text[returned..] in front of the next chunk. at_end = true: every piece is passed; returns
// text.size(). A chunk should end on a UTF-8 character boundary (utf8_safe_end).
size_t split_pretokens(std::string_view text, bool at_end,
                       const std::function<void(std::string_view)>& on_piece);

// The largest n <= text.size() such that text[0..n) does not end inside a UTF-8 character that
// the following bytes might complete (looks at most 3 bytes back).
size_t utf8_safe_end(std::string_view text);

// The offset of the first byte that is not valid UTF-8 (a stray continuation byte, a truncated,
// overlong or surrogate sequence, past U+10FFFF), or npos when all of `text` is UTF-8. A sequence
// cut by the end of `text` counts as invalid.
size_t first_invalid_utf8(std::string_view text);

// `bytes` with each byte that is not part of valid UTF-8 replaced by U+FFFD, for text shown to a
// person (`gpuml generate`): a model's tokens may end, or join, mid-character.
std::string utf8_lossy(std::string_view bytes);

struct PretokenStreamReport {
  int64_t bytes = 0;          // the file's
  int64_t invalid_bytes = 0;  // bytes that are not UTF-8 (allow_invalid_utf8)
};

// The pieces of a file, read in 1 MiB chunks (memory stays bounded whatever the file's size):
// on_piece(piece, its offset in the file), in order; on_read(bytes read, file size) after each
// chunk (may be empty). A file that is not UTF-8 is refused naming the first bad byte's offset
// (ErrorKind::Io) unless allow_invalid_utf8 (then the byte-level fallback above applies). A piece
// still open at a chunk's end waits for the next chunk, up to 4 MiB; a longer one (megabytes of
// letters without a space) is cut there, where `tokenizers` would not cut it.
//
// specials: strings (a tokenizer's added tokens, such as "<|endoftext|>") cut out of the text
// before it is pre-tokenized, as `tokenizers` does: each occurrence (leftmost, the longest of those
// starting at the same byte) goes to on_special(index into specials, offset) instead, and the text
// on either side is pre-tokenized as if it ended or began there. A chunk is never cut inside one.
PretokenStreamReport stream_pretokens(
    const std::string& path, bool allow_invalid_utf8,
    const std::function<void(std::string_view, int64_t)>& on_piece,
    const std::function<void(int64_t, int64_t)>& on_read,
    const std::vector<std::string>& specials = {},
    const std::function<void(size_t, int64_t)>& on_special = {});

// `text` cut at the occurrences of `specials` (leftmost first; among those starting at the same
// byte, the longest): on_text(the text before an occurrence, or after the last; may be empty)
// and on_special(index into specials) in order. Empty specials never match.
void split_specials(std::string_view text, const std::vector<std::string>& specials,
                    const std::function<void(std::string_view)>& on_text,
                    const std::function<void(size_t)>& on_special);

}  // namespace gpuml::data
