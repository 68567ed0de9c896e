// HTTP/1.1 transport on Boost.Beast (parsing, limits) and Asio (one I/O thread for every socket).
// A connection reads one request at a time (header and body under one deadline), hands it to a
// worker (or answers it on the I/O thread), writes the answer from an output queue, and only then
// parses the next request from what is already buffered: pipelined requests are answered in order.
// Responses are serialised here (status line, headers, chunked framing); Beast only parses.
#include "server/http.h"

#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "core/check.h"

namespace jet::server::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxUnsent = 256 << 10;  // a streaming handler waits while more is queued for the socket
constexpr auto kLinger = std::chrono::seconds(2);   // reading what a client still sends after our last answer
constexpr auto kPoll = std::chrono::milliseconds(50);

const char* reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Error";
  }
}

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

struct Route {
  std::string method, path;
  Handler handler;
  bool on_io_thread;
};

struct Task {
  std::shared_ptr<Conn> conn;
  Request req;
  const Route* route;
};

struct Server::Impl {
  Options o;
  std::vector<Route> routes;
  std::function<std::string(int, const std::string&)> error_body = [](int, const std::string& m) { return m; };

  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::steady_timer accept_retry{ioc};
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;  // I/O thread only
  std::atomic<size_t> open_conns{0};
  std::atomic<bool> stopping{false};  // quit seen: no new requests
  std::atomic<bool> aborting{false};  // drain time is over: streams stop at once

  std::mutex qmu;
  std::condition_variable qcv, idle_cv;
  std::deque<Task> queue;
  int active = 0;
  bool workers_quit = false;
  std::vector<std::thread> workers;

  explicit Impl(Options opts) : o(std::move(opts)) {}
  ~Impl() {
    ioc.stop();
    conns.clear();
  }
  void accept();
  void add(tcp::socket s);
  void dispatch(const std::shared_ptr<Conn>& c, Request req);
  void work();
};

// One client connection. Fields without a comment are touched by the I/O thread only.
struct Conn : std::enable_shared_from_this<Conn> {
  enum class Phase { reading, busy, lingering, closed };
  Conn(Server::Impl& s, tcp::socket sock) : srv(s), stream(std::move(sock)) {}

  Server::Impl& srv;
  beast::tcp_stream stream;
  beast::flat_buffer buf;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  Phase phase = Phase::reading;
  Clock::time_point wait_since = Clock::now();
  int version = 11;
  bool keep_alive = false;
  bool chunked = false;      // the answer being written is chunked
  bool answered = false;     // the whole answer is queued
  bool writing = false;
  bool watching = false;         // a read that notices the client leaving while its request runs (watch())
  bool finish_after_watch = false;
  std::deque<std::string> out;

  // Shared with the worker that answers the current request.
  std::mutex mu;
  std::condition_variable cv;
  size_t unsent = 0;
  bool dead = false;

  void read_request();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void on_read_error(beast::error_code ec);
  void watch();
  bool partial() const { return buf.size() > 0 || (parser && parser->got_some()); }

  // The status line and headers; keep-alive unless the server stops or the client did not ask.
  std::string head(int status, const std::string& ctype, const std::vector<std::pair<std::string, std::string>>& extra,
                   std::optional<size_t> length, bool stream_body) {
    keep_alive = keep_alive && !srv.stopping && !(stream_body && version < 11);
    chunked = stream_body && version >= 11;
    std::string h = fmt::format("HTTP/1.1 {} {}\r\nServer: jet\r\nContent-Type: {}\r\n", status, reason(status), ctype);
    if (length) h += fmt::format("Content-Length: {}\r\n", *length);
    if (chunked) h += "Transfer-Encoding: chunked\r\n";
    for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
    h += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    return h;
  }
  // A whole answer (I/O thread).
  void respond(int status, const std::string& ctype, std::string body,
               const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    if (phase == Phase::closed || answered) return;
    push_out(head(status, ctype, extra, body.size(), false) + body);
    answered = true;
    flush();
  }
  void respond_error(int status, const std::string& message, bool close) {
    if (close) keep_alive = false;
    std::vector<std::pair<std::string, std::string>> extra;
    if (status == 503) extra.emplace_back("Retry-After", "1");
    phase = Phase::busy;
    respond(status, "application/json", srv.error_body(status, message), extra);
  }
  void start_stream(int status, const std::string& ctype, const std::vector<std::pair<std::string, std::string>>& extra) {
    if (phase == Phase::closed || answered) return;
    push_out(head(status, ctype, extra, std::nullopt, true));
    flush();
  }
  void stream_piece(std::string data, bool counted) {
    if (phase == Phase::closed || answered || data.empty()) {
      if (counted) uncount(data.size());
      return;
    }
    const size_t n = data.size();
    if (chunked) data = fmt::format("{:x}\r\n", n) + data + "\r\n";
    out.push_back(std::move(data));
    if (counted) uncount(n);  // counted again by the write, in wire bytes
    count(out.back().size());
    flush();
  }
  void end_stream() {
    if (phase == Phase::closed || answered) return;
    if (chunked) push_out("0\r\n\r\n");
    answered = true;
    flush();
  }

  void push_out(std::string s) {
    count(s.size());
    out.push_back(std::move(s));
  }
  void count(size_t n) {
    std::lock_guard<std::mutex> g(mu);
    unsent += n;
  }
  void uncount(size_t n) {
    {
      std::lock_guard<std::mutex> g(mu);
      unsent -= std::min(unsent, n);
    }
    cv.notify_all();
  }

  void flush() {
    if (writing || phase == Phase::closed) return;
    if (out.empty()) {
      if (answered) finish();
      return;
    }
    writing = true;
    stream.expires_after(seconds(srv.o.request_timeout));
    net::async_write(stream, net::buffer(out.front()), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->writing = false;
      if (self->phase == Phase::closed) return;
      if (ec) return self->close();
      self->out.pop_front();
      self->uncount(n);
      self->flush();
    });
  }
  // The answer is out: the next request (maybe already buffered), or a lingering close.
  void finish() {
    if (watching) {  // one read at a time: the watch ends first (its completion calls this again)
      finish_after_watch = true;
      beast::error_code ec;
      stream.socket().cancel(ec);
      return;
    }
    stream.expires_never();
    if (keep_alive && !srv.stopping) return read_request();
    linger();
  }
  // Half-close, then drain what the client still sends for a moment, so that our answer is not lost
  // to a reset.
  void linger() {
    phase = Phase::lingering;
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(kLinger);
    buf.consume(buf.size());
    stream.async_read_some(buf.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->phase == Phase::closed) return;
      if (ec) return self->close();
      self->linger();
    });
  }
  void close() {
    if (phase == Phase::closed) return;
    phase = Phase::closed;
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    {
      std::lock_guard<std::mutex> g(mu);
      dead = true;
    }
    cv.notify_all();
    --srv.open_conns;
    auto keep = shared_from_this();
    srv.conns.erase(this);
  }
};

void Conn::read_request() {
  phase = Phase::reading;
  wait_since = Clock::now();
  answered = false;
  chunked = false;
  parser.emplace();
  parser->header_limit(static_cast<std::uint32_t>(srv.o.max_header_bytes));
  parser->body_limit(srv.o.max_body_bytes);
  stream.expires_after(seconds(srv.o.request_timeout));  // header and body together
  bhttp::async_read_header(stream, buf, *parser,
                           [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Conn::on_header(beast::error_code ec) {
  if (phase == Phase::closed) return;
  if (ec) return on_read_error(ec);
  if (parser->is_done()) return on_body({});
  const auto& h = parser->get();
  if (h.version() >= 11 && beast::iequals(h[bhttp::field::expect], "100-continue")) {
    writing = true;
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(stream, net::buffer(kContinue), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing = false;
      if (self->phase == Phase::closed) return;
      if (ec) return self->close();
      self->read_body();
    });
    return;
  }
  read_body();
}

void Conn::read_body() {
  bhttp::async_read(stream, buf, *parser, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void Conn::on_body(beast::error_code ec) {
  if (phase == Phase::closed) return;
  if (ec) return on_read_error(ec);
  stream.expires_never();
  phase = Phase::busy;
  auto msg = parser->release();
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.path = req.target.substr(0, req.target.find('?'));
  req.version = msg.version() >= 11 ? 11 : 10;
  req.body = std::move(msg.body());
  version = req.version;
  keep_alive = msg.keep_alive();
  parser.reset();
  srv.dispatch(shared_from_this(), std::move(req));
  if (phase == Phase::busy && !answered) watch();
}

// While a request runs, the socket is read anyway: a pipelined next request is kept in buf (up to one request's
// limits, then reading pauses), and the end of the stream or an error means the client went away. Then the
// connection closes at once, so the handler sees client_gone() / a failing write() and its generation stops
// (as HTTP servers commonly do, a client's half-close counts as leaving too). The read is on the raw socket, so
// the stream's write timeouts do not apply to it.
void Conn::watch() {
  if (phase != Phase::busy || buf.size() >= srv.o.max_header_bytes + srv.o.max_body_bytes) return;
  watching = true;
  stream.socket().async_read_some(buf.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->watching = false;
    if (self->phase == Phase::closed) return;
    if (!ec) self->buf.commit(n);
    if (self->finish_after_watch) {
      self->finish_after_watch = false;
      return self->finish();
    }
    if (ec == net::error::operation_aborted) return;
    if (ec) return self->close();
    self->watch();
  });
}

void Conn::on_read_error(beast::error_code ec) {
  if (ec == bhttp::error::header_limit) return respond_error(431, "the request header is too large", true);
  if (ec == bhttp::error::body_limit)
    return respond_error(413, fmt::format("the request body is too large (at most {} bytes)", srv.o.max_body_bytes), true);
  if (ec == net::error::operation_aborted && srv.stopping && partial())
    return respond_error(503, "the server is shutting down", true);
  // A malformed request (not a connection error, timeout or a clean close between requests).
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
    return respond_error(400, fmt::format("malformed HTTP request ({})", ec.message()), true);
  close();
}

void Server::Impl::dispatch(const std::shared_ptr<Conn>& c, Request req) {
  if (stopping) return c->respond_error(503, "the server is shutting down", true);
  const Route* route = nullptr;
  for (const Route& r : routes)
    if (r.path == req.path && r.method == req.method) route = &r;
  if (!route) return c->respond_error(404, fmt::format("no route {} {}", req.method, req.path), false);
  if (route->on_io_thread) {
    Reply reply(c);
    try {
      route->handler(req, reply);
    } catch (const std::exception& e) {
      if (!reply.started()) reply.send(500, "application/json", error_body(500, e.what()));
    }
    return;
  }
  {
    std::lock_guard<std::mutex> g(qmu);
    if (queue.size() < o.max_queue) {
      queue.push_back({c, std::move(req), route});
      qcv.notify_one();
      return;
    }
  }
  c->respond_error(503, "the server is busy (too many requests waiting); retry later", true);
}

void Server::Impl::work() {
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lk(qmu);
      qcv.wait(lk, [&] { return workers_quit || !queue.empty(); });
      if (queue.empty()) return;
      t = std::move(queue.front());
      queue.pop_front();
      ++active;
    }
    {
      Reply reply(t.conn);
      try {
        t.route->handler(t.req, reply);
      } catch (const std::exception& e) {
        if (!reply.started()) reply.send(500, "application/json", error_body(500, e.what()));
      }
    }
    t = Task{};
    {
      std::lock_guard<std::mutex> g(qmu);
      --active;
    }
    idle_cv.notify_all();
  }
}

void Server::Impl::add(tcp::socket s) {
  if (conns.size() >= o.max_connections) {
    // Full: the connection that has waited longest for a request makes room, else the newcomer is refused.
    Conn* oldest = nullptr;
    for (auto& [p, c] : conns)
      if (c->phase == Conn::Phase::reading && (!oldest || c->wait_since < oldest->wait_since)) oldest = p;
    if (oldest) {
      oldest->close();
    } else {
      auto c = std::make_shared<Conn>(*this, std::move(s));
      conns.emplace(c.get(), c);
      ++open_conns;
      c->keep_alive = false;
      c->respond_error(503, "the server has too many connections; retry later", true);
      return;
    }
  }
  beast::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  auto c = std::make_shared<Conn>(*this, std::move(s));
  conns.emplace(c.get(), c);
  ++open_conns;
  c->read_request();
}

void Server::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket s) {
    if (stopping || !acceptor.is_open()) return;
    if (ec) {  // e.g. out of file descriptors: try again a little later rather than spin
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code) { accept(); });
      return;
    }
    add(std::move(s));
    accept();
  });
}

Reply::~Reply() {
  if (state_ == State::none) {
    try {
      send(500, "application/json", "");
    } catch (...) {
    }
  } else if (state_ == State::streaming) {
    end();
  }
}

void Reply::send(int status, const std::string& content_type, std::string body) {
  if (state_ != State::none) return;
  state_ = State::done;
  if (body.empty() && status >= 400) body = conn_->srv.error_body(status, "the request got no answer");
  net::post(conn_->srv.ioc, [c = conn_, status, content_type, body = std::move(body)]() mutable {
    c->respond(status, content_type, std::move(body));
  });
}

void Reply::start(int status, const std::string& content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
  if (state_ != State::none) return;
  state_ = State::streaming;
  net::post(conn_->srv.ioc, [c = conn_, status, content_type, headers] { c->start_stream(status, content_type, headers); });
}

bool Reply::client_gone() const {
  std::lock_guard<std::mutex> g(conn_->mu);
  return conn_->dead;
}

bool Reply::write(const std::string& data) {
  if (state_ != State::streaming) return false;
  Conn& c = *conn_;
  {
    std::unique_lock<std::mutex> lk(c.mu);
    // Back-pressure: a client that reads slowly makes this wait, not memory grow (a stalled write
    // closes the connection after the request timeout, which ends the wait).
    // Once the drain time is over (aborting) a blocked writer gives up; one that is not blocked may still
    // queue its last pieces (the end of a cancelled stream).
    while (!c.dead && c.unsent > kMaxUnsent) {
      if (c.srv.aborting) return false;
      c.cv.wait_for(lk, kPoll);
    }
    if (c.dead) return false;
    c.unsent += data.size();
  }
  net::post(c.srv.ioc, [c = conn_, data] { c->stream_piece(data, true); });
  return true;
}

void Reply::end() {
  if (state_ != State::streaming) return;
  state_ = State::done;
  net::post(conn_->srv.ioc, [c = conn_] { c->end_stream(); });
}

Server::Server(Options o) : impl_(std::make_unique<Impl>(std::move(o))) {}
Server::~Server() = default;

void Server::route(const std::string& method, const std::string& path, Handler h, bool on_io_thread) {
  impl_->routes.push_back({method, path, std::move(h), on_io_thread});
}

void Server::set_error_body(std::function<std::string(int, const std::string&)> f) { impl_->error_body = std::move(f); }

int Server::bind() {
  Impl& s = *impl_;
  JET_CHECK(s.o.workers >= 1 && s.o.max_connections >= 1, "serve: needs at least one worker and one connection");
  // Every connection is a file descriptor: raise the soft limit as far as the hard one allows.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < s.o.max_connections + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, s.o.max_connections + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  beast::error_code ec;
  const auto addr = net::ip::make_address(s.o.host, ec);
  JET_CHECK(!ec, "serve: cannot listen on {}: not an IP address", s.o.host);
  JET_CHECK(s.o.port >= 0 && s.o.port <= 65535, "serve: bad port {}", s.o.port);
  const tcp::endpoint ep(addr, static_cast<unsigned short>(s.o.port));
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  JET_CHECK(!ec, "serve: cannot listen on {}:{} ({})", s.o.host, s.o.port, ec.message());
  return s.acceptor.local_endpoint().port();
}

void Server::run(const std::atomic<bool>& quit, const std::function<void()>& on_drain_timeout) {
  Impl& s = *impl_;
  for (int i = 0; i < s.o.workers; ++i) s.workers.emplace_back([&s] { s.work(); });
  auto guard = net::make_work_guard(s.ioc);
  s.accept();
  std::thread io([&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {  // one connection's trouble (e.g. out of memory) ends only it
        fmt::print(stderr, "jet serve: {}\n", e.what());
      }
    }
  });

  while (!quit) std::this_thread::sleep_for(kPoll);
  s.stopping = true;
  // Stop accepting; connections waiting for a request close (503 if part of one had arrived).
  net::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.accept_retry.cancel();
    for (auto& [p, c] : s.conns)
      if (c->phase == Conn::Phase::reading) c->stream.cancel();
  });
  std::deque<Task> queued;
  {
    std::lock_guard<std::mutex> g(s.qmu);
    queued.swap(s.queue);
  }
  for (Task& t : queued)
    net::post(s.ioc, [c = t.conn] { c->respond_error(503, "the server is shutting down", true); });
  queued.clear();

  // Running handlers finish (their answers complete), for at most drain_timeout.
  const auto deadline = Clock::now() + seconds(s.o.drain_timeout);
  auto idle = [&s] { return s.active == 0 && s.queue.empty(); };
  {
    std::unique_lock<std::mutex> lk(s.qmu);
    if (!s.idle_cv.wait_until(lk, deadline, idle)) {
      lk.unlock();
      on_drain_timeout();
      s.aborting = true;
      lk.lock();
      s.idle_cv.wait_for(lk, std::chrono::seconds(5), idle);
    }
    s.workers_quit = true;
  }
  s.qcv.notify_all();
  for (auto& w : s.workers) w.join();
  s.workers.clear();
  // The answers already queued go out (bounded), then everything closes.
  const auto flush_deadline = Clock::now() + std::chrono::milliseconds(1500);
  while (s.open_conns > 0 && Clock::now() < flush_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  guard.reset();
  s.ioc.stop();
  io.join();
  s.conns.clear();
}

}  // namespace jet::server::http
