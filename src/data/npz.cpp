#include "data/npz.h"

#include <zip.h>

#include <algorithm>

#include "data/byte_source.h"
#include "data/npy_format.h"

namespace gpuml::data {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_safe_member_name(const std::string& name) {
  if (name.empty() || name[0] == '/' || name.find('\\') != std::string::npos) return false;
  if (name.size() >= 2 && name[1] == ':') return false;  // a Windows drive letter
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0 && end - start == 2) return false;
    start = end + 1;
  }
  return true;
}

class ZipMemberSource final : public ByteSource {
 public:
  ZipMemberSource(zip_file_t* file, std::string name) : file_(file), name_(std::move(name)) {}
  ~ZipMemberSource() override { zip_fclose(file_); }
  size_t read(void* dst, size_t n) override {
    size_t total = 0;
    char* out = static_cast<char*>(dst);
    while (total < n) {
      zip_int64_t got = zip_fread(file_, out + total, n - total);
      GPUML_CHECK_KIND(ErrorKind::Io, got >= 0, "{}: corrupt archive member: {}", name_,
                       zip_error_strerror(zip_file_get_error(file_)));
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }
  const std::string& name() const override { return name_; }
  uint64_t stored_size() const override { return 0; }
  bool compressed() const override { return true; }

 private:
  zip_file_t* file_;
  std::string name_;
};

}  // namespace

NpzReader::NpzReader(std::string path) : path_(std::move(path)) {
  int code = 0;
  archive_ = zip_open(path_.c_str(), ZIP_RDONLY, &code);
  if (archive_ == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    GPUML_FAIL(ErrorKind::Io, "{}: cannot open as an NPZ (zip) archive: {}", path_, why);
  }
  zip_int64_t count = zip_get_num_entries(archive_, 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* name = zip_get_name(archive_, static_cast<zip_uint64_t>(i), 0);
    std::string member = name ? name : "";
    if (!is_safe_member_name(member)) {
      zip_discard(archive_);
      archive_ = nullptr;
      GPUML_FAIL(ErrorKind::Io, "{}: archive member name '{}' could escape a directory; refusing the archive",
                 path_, member);
    }
    members_.push_back(member);
  }
}

NpzReader::~NpzReader() {
  if (archive_) zip_discard(archive_);  // read-only: nothing to write back
}

std::vector<std::string> NpzReader::names() const {
  std::vector<std::string> out;
  for (const std::string& m : members_)
    if (ends_with(m, ".npy")) out.push_back(m.substr(0, m.size() - 4));
  return out;
}

bool NpzReader::contains(const std::string& name) const {
  std::string member = ends_with(name, ".npy") ? name : name + ".npy";
  return std::find(members_.begin(), members_.end(), member) != members_.end();
}

NpzReader::Member NpzReader::open_member(const std::string& name) const {
  std::string member = ends_with(name, ".npy") ? name : name + ".npy";
  auto it = std::find(members_.begin(), members_.end(), member);
  GPUML_CHECK_KIND(ErrorKind::Io, it != members_.end(), "{}: no array '{}' (arrays: {})", path_, name,
                   fmt::join(names(), ", "));
  zip_uint64_t index = static_cast<zip_uint64_t>(it - members_.begin());
  std::string label = fmt::format("{}:{}", path_, member);

  zip_stat_t st;
  zip_stat_init(&st);
  GPUML_CHECK_KIND(ErrorKind::Io, zip_stat_index(archive_, index, 0, &st) == 0, "{}: cannot stat the member: {}",
                   label, zip_strerror(archive_));
  const zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  GPUML_CHECK_KIND(ErrorKind::Io, (st.valid & needed) == needed, "{}: the archive does not record its sizes",
                   label);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, !(st.valid & ZIP_STAT_ENCRYPTION_METHOD) || st.encryption_method == ZIP_EM_NONE,
                   "{}: encrypted members are not supported", label);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, st.comp_method == ZIP_CM_STORE || st.comp_method == ZIP_CM_DEFLATE,
                   "{}: compression method {} is not supported (stored or deflated only)", label, st.comp_method);
  // A forged uncompressed size must not make us allocate: deflate expands at most ~1032:1.
  uint64_t bound = st.comp_method == ZIP_CM_STORE ? st.comp_size : st.comp_size * 1032 + 1024;
  GPUML_CHECK_KIND(ErrorKind::Io, st.size <= bound, "{}: declared size {} is impossible for {} compressed bytes",
                   label, st.size, st.comp_size);

  zip_file_t* file = zip_fopen_index(archive_, index, 0);
  GPUML_CHECK_KIND(ErrorKind::Io, file != nullptr, "{}: cannot open the member: {}", label, zip_strerror(archive_));
  auto src = std::make_unique<ZipMemberSource>(file, label);
  NpyPreamble pre = read_npy_preamble(*src, st.size);
  return {std::move(src), pre};
}

Tensor NpzReader::read(const std::string& name) const {
  Member m = open_member(name);
  Tensor out = read_npy_payload(*m.source, m.preamble);
  GPUML_CHECK_KIND(ErrorKind::Io, at_end(*m.source), "{}: member longer than its declared size", m.source->name());
  return out;
}

}  // namespace gpuml::data
