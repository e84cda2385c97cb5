#include "interop/weights_file.h"

#include <zip.h>

#include <fmt/ranges.h>

#include <map>
#include <memory>
#include <set>

#include "backend/dispatch.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "data/npy_format.h"
#include "data/npz.h"

namespace gpuml::interop {
namespace {

std::string zip_error_text(zip_error_t* error) { return error ? zip_error_strerror(error) : "unknown error"; }

// libzip writes archives to a zip_source; a buffer source keeps the whole archive in memory so
// that the file itself is written once, atomically.
std::string build_npz(const NamedTensors& tensors) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
  GPUML_CHECK_KIND(ErrorKind::Io, buffer != nullptr, "NPZ: cannot create an archive buffer: {}",
                   zip_error_text(&error));
  zip_source_keep(buffer);  // stays alive after zip_close so its bytes can be read back
  std::unique_ptr<zip_source_t, void (*)(zip_source_t*)> keep(buffer, zip_source_free);
  zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
  GPUML_CHECK_KIND(ErrorKind::Io, archive != nullptr, "NPZ: cannot open the archive buffer: {}",
                   zip_error_text(&error));
  // Member bytes must outlive zip_close, which is when libzip reads them.
  std::vector<std::string> members;
  members.reserve(tensors.size());
  std::set<std::string> seen;
  try {
    for (const auto& [name, tensor] : tensors) {
      GPUML_CHECK(!name.empty() && seen.insert(name).second, "NPZ: tensor names must be unique and non-empty ('{}')",
                  name);
      Tensor host = contiguous(tensor, backend_registry().reference());
      std::string bytes = data::npy_v1_preamble(host.dtype(), host.shape());
      bytes.append(static_cast<const char*>(host.raw_data()), host.nbytes());
      members.push_back(std::move(bytes));
      zip_source_t* member = zip_source_buffer(archive, members.back().data(), members.back().size(), 0);
      GPUML_CHECK_KIND(ErrorKind::Io, member != nullptr, "NPZ: cannot add '{}': {}", name,
                       zip_error_text(zip_get_error(archive)));
      zip_int64_t index = zip_file_add(archive, (name + ".npy").c_str(), member, ZIP_FL_ENC_UTF_8);
      if (index < 0) {
        zip_source_free(member);
        GPUML_FAIL(ErrorKind::Io, "NPZ: cannot add '{}': {}", name, zip_error_text(zip_get_error(archive)));
      }
      zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
    }
  } catch (...) {
    zip_discard(archive);
    throw;
  }
  if (zip_close(archive) != 0) {
    std::string why = zip_error_text(zip_get_error(archive));
    zip_discard(archive);
    GPUML_FAIL(ErrorKind::Io, "NPZ: cannot finish the archive: {}", why);
  }
  zip_stat_t stat;
  GPUML_CHECK_KIND(ErrorKind::Io, zip_source_stat(buffer, &stat) == 0 && zip_source_open(buffer) == 0,
                   "NPZ: cannot read the archive buffer back");
  std::string out(static_cast<size_t>(stat.size), '\0');
  zip_int64_t got = zip_source_read(buffer, out.data(), out.size());
  zip_source_close(buffer);
  GPUML_CHECK_KIND(ErrorKind::Io, got == static_cast<zip_int64_t>(out.size()), "NPZ: short read of the archive");
  return out;
}

}  // namespace

void save_npz_weights(const std::filesystem::path& path, const NamedTensors& tensors) {
  write_file_atomically(path, build_npz(tensors));
}

NamedTensors load_weights_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  if (ext == ".safetensors") return load_safetensors(path).tensors;
  GPUML_CHECK(ext == ".npz", "{}: weights must be a .safetensors or .npz file", path.string());
  data::NpzReader npz(path.string());
  NamedTensors out;
  for (const std::string& name : npz.names()) out.emplace_back(name, npz.read(name));
  return out;
}

void check_weights_fit(const std::vector<nn::ParamInfo>& infos, const NamedTensors& weights) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : weights) given[name] = &t;
  std::vector<std::string> missing, extra;
  std::set<std::string> expected;
  for (const nn::ParamInfo& p : infos) {
    expected.insert(p.name);
    if (!given.count(p.name)) missing.push_back(p.name);
  }
  for (const auto& [name, t] : given)
    if (!expected.count(name)) extra.push_back(name);
  GPUML_CHECK(missing.empty() && extra.empty(), "weights do not match the model: missing [{}], unexpected [{}]",
              fmt::join(missing, ", "), fmt::join(extra, ", "));
  for (const nn::ParamInfo& p : infos) {
    const Tensor& t = *given.at(p.name);
    GPUML_CHECK_SHAPE(t.shape() == p.shape, "weight '{}' has shape {}, the model expects {}", p.name,
                      shape_str(t.shape()), shape_str(p.shape));
  }
}

}  // namespace gpuml::interop
