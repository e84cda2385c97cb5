// The rendezvous store the Gloo communicator meets its peers through: a key-value store over TCP,
// served by rank 0 at MASTER_ADDR:MASTER_PORT+1, in which each rank puts its Gloo address and
// from which it reads the others' (gloo::rendezvous::Context::connectFullMesh).
//
//   TcpStore store({.host = "10.0.0.1", .port = 29501, .serve = rank == 0, .rank = rank,
//                   .world_size = 2, .timeout = 30s});
//   gloo_context->connectFullMesh(store, device);   // set() its address, wait() + get() the
//   others' store.stop_serving();                           // once every rank has connected
//
// Why gpuml has one: Debian 12's Gloo (libgloo-dev, 2022) offers file, hash and Redis stores but
// no TCP store (PyTorch keeps its TCPStore in c10d). Why MASTER_PORT + 1: under a real torchrun
// the agent's own c10d store already listens on MASTER_PORT. Every step has the deadline: a
// rank 0 that never comes, or a rank that never registers, ends in a gpuml::Error that names the
// address and the rank, not in a hang. IPv4 only (an address or a name that resolves to one).
//
// Protocol (one request per connection; integers are little-endian u32):
//   'S' key_len key value_len value  ->  'K'
//   'G' key_len key                  ->  'K' value_len value   or  'N' (not there yet)
#pragma once

#include <gloo/rendezvous/store.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gpuml {

struct TcpStoreOptions {
  std::string host;  // rank 0's address (MASTER_ADDR)
  int port = 0;      // MASTER_PORT + 1
  bool serve = false;
  int rank = 0;  // for messages
  int world_size = 1;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

class TcpStore final : public gloo::rendezvous::Store {
 public:
  // Rank 0 (serve) binds and listens before returning; a port in use throws naming it.
  explicit TcpStore(TcpStoreOptions options);
  ~TcpStore() override;
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  void set(const std::string& key, const std::vector<char>& data) override;
  // Waits (until the deadline) for the key to be set.
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

  // Closes rank 0's listening socket (the port is free again for the next job). Idempotent.
  void stop_serving();

 private:
  // One request, retried (connect refused: rank 0 not listening yet) until `deadline`.
  std::vector<char> request(char op, const std::string& key, const std::vector<char>* value,
                            std::chrono::steady_clock::time_point deadline, bool* found);
  void serve_loop();
  void answer(int client);
  std::string where() const;  // "10.0.0.1:29501 (MASTER_ADDR:MASTER_PORT+1)"

  TcpStoreOptions options_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread server_;
  std::mutex mutex_;  // guards values_
  std::map<std::string, std::vector<char>> values_;
};

}  // namespace gpuml
