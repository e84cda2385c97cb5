// Atomic file output: readers see the old file or the complete new one, never a torn write.
// Every file gpuml produces (checkpoints, predictions, metrics, plots) goes through here.
//
//   write_file_atomically("run/metrics.csv", csv_text);
//   write_file_atomically("run/model.safetensors", [&](FileSink& out) {
//     out.write(header);
//     out.write(tensor.raw_data(), tensor.nbytes());
//   });
//
// How: the bytes go to a uniquely named temporary file in the target's directory (a rename is
// only atomic within one file system), which is flushed and fsync'ed, renamed over the target,
// and then the directory is fsync'ed so the rename itself survives a power loss. If the callback
// (or any step) throws, the temporary file is removed and the old target is left untouched.
// Errors are ErrorKind::Io and name the path and the system's reason. The new file gets the
// permissions of a fresh file (0666 minus the umask); a symlink at `path` is replaced by the file,
// not followed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gpuml {

// A buffered writer over an open file descriptor; only write_file_atomically makes one.
class FileSink {
 public:
  FileSink(int fd, std::filesystem::path path);
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Pushes buffered bytes to the kernel (write(2)); throws on failure.
  void flush();
  size_t bytes_written() const { return bytes_written_; }
  // The temporary file being written, for error messages.
  const std::filesystem::path& path() const { return path_; }

 private:
  int fd_;
  std::filesystem::path path_;
  std::vector<char> buffer_;
  size_t buffered_ = 0;
  size_t bytes_written_ = 0;
};

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(FileSink&)>& write);
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Whole-file read with the same error style (ErrorKind::Io naming the path).
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace gpuml
