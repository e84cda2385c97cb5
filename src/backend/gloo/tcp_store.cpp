#include "backend/gloo/tcp_store.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace gpuml {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Moves exactly `size` bytes, or returns false (peer closed, error, deadline).
bool send_all(int fd, const void* data, size_t size, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    pollfd pfd{fd, POLLOUT, 0};
    if (poll(&pfd, 1, remaining_ms(deadline)) <= 0) return false;
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool recv_all(int fd, void* data, size_t size, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, remaining_ms(deadline)) <= 0) return false;
    const ssize_t n = ::recv(fd, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool send_u32(int fd, uint32_t v, Clock::time_point deadline) {
  const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 24)};
  return send_all(fd, b, 4, deadline);
}

bool recv_u32(int fd, uint32_t* v, Clock::time_point deadline) {
  unsigned char b[4];
  if (!recv_all(fd, b, 4, deadline)) return false;
  *v = uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
  return true;
}

// Keys and values are Gloo's addresses: small. A length past this is not a gpuml rank talking.
constexpr uint32_t kMaxField = 1 << 20;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

TcpStore::TcpStore(TcpStoreOptions options) : options_(std::move(options)) {
  GPUML_CHECK(options_.port > 0 && options_.port <= 65535,
              "rendezvous: port {} is not a port (MASTER_PORT + 1)", options_.port);
  if (!options_.serve) return;
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  GPUML_CHECK_KIND(ErrorKind::Io, listen_fd_ >= 0, "rendezvous: socket(): {}",
                   std::strerror(errno));
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Every address of this machine (or network namespace): MASTER_ADDR names one of them, and a
  // name may resolve to another one than the peers reach it by.
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(options_.port));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    GPUML_FAIL(ErrorKind::Io,
               "rank 0 of {}: cannot listen on port {} for the rendezvous (MASTER_PORT + 1): {}; "
               "is another job "
               "using MASTER_PORT={}? pick another",
               options_.world_size, options_.port, why, options_.port - 1);
  }
  server_ = std::thread([this] { serve_loop(); });
}

TcpStore::~TcpStore() {
  stop_serving();
}

void TcpStore::stop_serving() {
  stop_ = true;
  if (server_.joinable()) server_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

std::string TcpStore::where() const {
  return fmt::format("{}:{} (MASTER_ADDR:MASTER_PORT+1)", options_.host, options_.port);
}

void TcpStore::serve_loop() {
  while (!stop_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;  // wakes every 50 ms to see stop_
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Socket closer(client);
    answer(client);
  }
}

// One request. A client that stalls mid-request is dropped after 2 s (it retries with a new
// connection until its own deadline), so one bad client cannot stop the rendezvous.
void TcpStore::answer(int client) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(2);
  char op = 0;
  uint32_t key_size = 0;
  if (!recv_all(client, &op, 1, deadline) || !recv_u32(client, &key_size, deadline) ||
      key_size > kMaxField)
    return;
  std::string key(key_size, '\0');
  if (!recv_all(client, key.data(), key.size(), deadline)) return;
  if (op == 'S') {
    uint32_t value_size = 0;
    if (!recv_u32(client, &value_size, deadline) || value_size > kMaxField) return;
    std::vector<char> value(value_size);
    if (!recv_all(client, value.data(), value.size(), deadline)) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      values_[key] = std::move(value);
    }
    send_all(client, "K", 1, deadline);
  } else if (op == 'G') {
    std::vector<char> value;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = values_.find(key);
      if (it != values_.end()) value = it->second, found = true;
    }
    if (!found) {
      send_all(client, "N", 1, deadline);
      return;
    }
    if (send_all(client, "K", 1, deadline) &&
        send_u32(client, static_cast<uint32_t>(value.size()), deadline))
      send_all(client, value.data(), value.size(), deadline);
  }
}

std::vector<char> TcpStore::request(char op, const std::string& key, const std::vector<char>* value,
                                    Clock::time_point deadline, bool* found) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* resolved = nullptr;
  const std::string port = std::to_string(options_.port);
  const int gai = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &resolved);
  GPUML_CHECK_KIND(
      ErrorKind::Io, gai == 0 && resolved != nullptr,
      "rank {} of {}: rendezvous: MASTER_ADDR={} does not resolve to an IPv4 address: {}",
      options_.rank, options_.world_size, options_.host, gai_strerror(gai));
  sockaddr_in target{};
  std::memcpy(&target, resolved->ai_addr, sizeof target);
  freeaddrinfo(resolved);

  std::string last_error = "no answer";
  for (;;) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    GPUML_CHECK_KIND(ErrorKind::Io, s.fd() >= 0, "rendezvous: socket(): {}", std::strerror(errno));
    bool connected = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&target), sizeof target) == 0;
    if (!connected && errno == EINPROGRESS) {
      pollfd pfd{s.fd(), POLLOUT, 0};
      int error = 0;
      socklen_t length = sizeof error;
      connected = poll(&pfd, 1, std::min(remaining_ms(deadline), 1000)) == 1 &&
                  getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
      if (!connected) last_error = error != 0 ? std::strerror(error) : "connect timed out";
    } else if (!connected) {
      last_error = std::strerror(errno);
    }
    if (connected) {
      const Clock::time_point answer_by =
          std::min(deadline, Clock::now() + std::chrono::seconds(5));
      const uint32_t key_size = static_cast<uint32_t>(key.size());
      bool ok = send_all(s.fd(), &op, 1, answer_by) && send_u32(s.fd(), key_size, answer_by) &&
                send_all(s.fd(), key.data(), key.size(), answer_by);
      if (ok && value != nullptr)
        ok = send_u32(s.fd(), static_cast<uint32_t>(value->size()), answer_by) &&
             send_all(s.fd(), value->data(), value->size(), answer_by);
      char reply = 0;
      ok = ok && recv_all(s.fd(), &reply, 1, answer_by);
      if (ok && reply == 'K') {
        *found = true;
        if (op != 'G') return {};
        uint32_t size = 0;
        if (recv_u32(s.fd(), &size, answer_by) && size <= kMaxField) {
          std::vector<char> data(size);
          if (recv_all(s.fd(), data.data(), data.size(), answer_by)) return data;
        }
        last_error = "a truncated answer";
      } else if (ok && reply == 'N') {
        *found = false;
        return {};
      } else {
        last_error = "no answer to a request";
      }
    }
    if (Clock::now() >= deadline)
      GPUML_FAIL(ErrorKind::Io,
                 "rank {} of {}: rendezvous at {} failed within the deadline ({:.1f} s): {}; is "
                 "rank 0 running, and "
                 "is MASTER_ADDR its address as seen from here? (--dist-timeout sets the deadline)",
                 options_.rank, options_.world_size, where(),
                 std::chrono::duration<double>(options_.timeout).count(), last_error);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(50));  // rank 0 not listening yet: try again
  }
}

void TcpStore::set(const std::string& key, const std::vector<char>& data) {
  bool found = false;
  request('S', key, &data, Clock::now() + options_.timeout, &found);
}

std::vector<char> TcpStore::get(const std::string& key) {
  const Clock::time_point deadline = Clock::now() + options_.timeout;
  for (;;) {
    bool found = false;
    std::vector<char> value = request('G', key, nullptr, deadline, &found);
    if (found) return value;
    // Gloo's keys are rank numbers: name the rank that has not registered.
    if (Clock::now() >= deadline)
      GPUML_FAIL(ErrorKind::Io,
                 "rank {} of {}: rendezvous at {}: key '{}' (a rank's address) was not set within "
                 "the deadline "
                 "({:.1f} s): a rank never started or could not reach {} (--dist-timeout sets the "
                 "deadline)",
                 options_.rank, options_.world_size, where(), key,
                 std::chrono::duration<double>(options_.timeout).count(), options_.host);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void TcpStore::wait(const std::vector<std::string>& keys) {
  wait(keys, options_.timeout);
}

void TcpStore::wait(const std::vector<std::string>& keys,
                    const std::chrono::milliseconds& timeout) {
  // get() waits for a key; the shorter of the two deadlines holds.
  const std::chrono::milliseconds saved = options_.timeout;
  options_.timeout = std::min(saved, timeout);
  try {
    for (const std::string& key : keys) get(key);
  } catch (...) {
    options_.timeout = saved;
    throw;
  }
  options_.timeout = saved;
}

}  // namespace gpuml
