// The HTTP/1.1 transport of `jet serve`, on Boost.Beast / Asio: one event-driven I/O thread owns every
// connection (accepting, reading requests, writing answers), so slow or idle clients cost a socket,
// never a thread; complete requests go to a fixed pool of worker threads that run the handlers.
//
// Limits: a request's header (at most max_header_bytes) and body (at most max_body_bytes, for every
// transfer encoding) must arrive within request_timeout of the connection becoming ready for it, else
// the connection is closed (431 / 413 / 400 for oversized or malformed requests). At most
// max_connections are open: a new one first evicts the connection that has waited longest for a
// request, else it gets 503. At most max_queue complete requests wait for a worker: beyond, 503.
// Keep-alive and pipelining: requests on one connection are answered in order, one at a time.
// HTTP/1.0 clients get close-delimited streams instead of chunked ones.
// Shutdown (quit): no new connections; idle ones are closed, partly received and queued requests get
// 503; handlers that run may finish within drain_timeout, then on_drain_timeout() is called (it must
// make them end, e.g. by cancelling their generations) and run() returns within a second or two.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace jet::server::http {

struct Request {
  std::string method, target, path, body;  // path: target without the query string
  int version = 11;                        // 10 or 11
};

struct Conn;

// The answer to one request; handlers on worker threads call it (it posts to the I/O thread).
// Either send() once, or start() then write()* then end(). A reply left unanswered when the handler
// returns is answered 500.
class Reply {
 public:
  explicit Reply(std::shared_ptr<Conn> c) : conn_(std::move(c)) {}
  ~Reply();
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;

  void send(int status, const std::string& content_type, std::string body);
  // A streamed body: chunked for HTTP/1.1 clients, close-delimited for HTTP/1.0 ones.
  void start(int status, const std::string& content_type,
             const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Queues a piece of the stream; waits while much is unsent (a slow reader). False once the client
  // is gone (or the write stalled past the timeout, or the server gave up draining).
  bool write(const std::string& data);
  void end();
  bool started() const { return state_ != State::none; }
  // True once the connection is gone (the client closed or reset it while its request ran, a write stalled past
  // the timeout, or the server gave up draining): a handler that computes before answering stops there.
  bool client_gone() const;

 private:
  enum class State { none, streaming, done };
  std::shared_ptr<Conn> conn_;
  State state_ = State::none;
};

using Handler = std::function<void(const Request&, Reply&)>;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = a free port
  int workers = 8;
  size_t max_queue = 64;
  size_t max_connections = 256;
  size_t max_header_bytes = 64 << 10;
  size_t max_body_bytes = 16 << 20;
  double request_timeout = 30;  // seconds; also the longest a write may stall
  double drain_timeout = 8;     // seconds that running handlers get after quit
};

class Server {
 public:
  explicit Server(Options o);
  ~Server();
  // Routes by method and path. Fast handlers (no blocking) may run on the I/O thread itself: they
  // answer even when every worker is busy.
  void route(const std::string& method, const std::string& path, Handler h, bool on_io_thread = false);
  // Handler for errors the transport answers itself (404, 413, 503, ...): returns the body (JSON).
  void set_error_body(std::function<std::string(int status, const std::string& message)> f);
  int bind();  // listens; returns the port. Throws when the address cannot be bound.
  // Serves until quit becomes true, then shuts down as described above and returns.
  void run(const std::atomic<bool>& quit, const std::function<void()>& on_drain_timeout);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace jet::server::http
