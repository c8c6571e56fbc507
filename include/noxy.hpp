// libnoxy for C++: a header-only, C++17 binding over the C ABI of noxy.h (no second native
// library: link libnoxy as for C, `noxy::cpp` in CMake, `pkg-config noxy`).
//
//   noxy::Config config;
//   config.endpoint = "https://relay.noxy.network";
//   config.app_token = token;
//   noxy::Result<noxy::Client> client = noxy::Client::create(config);
//   if (!client) { std::cerr << client.error().message << "\n"; return 1; }
//   noxy::Result<noxy::DecisionResult> result =
//       client->send_and_wait("0xabc...", R"({"kind":"transfer","title":"Send 1 ETH"})");
//   if (result && result->outcome == noxy::Outcome::approved) { /* act */ }
//
// Rules of this binding:
// - Ownership. Every C object sits in a std::unique_ptr with a deleter (noxy::Client,
//   noxy::Operation) or is copied into a value type (std::string, std::vector,
//   std::array<std::uint8_t, 32>) and freed at once. Nothing is left for the caller to free.
// - Errors. Fallible calls return a [[nodiscard]] noxy::Result<T>: the value or a noxy::Error
//   (code, message, per-device deliveries); no exception is needed. `.value()` of a failed
//   result throws noxy::Exception, or, when exceptions are disabled (-fno-exceptions), prints
//   the error to stderr and calls std::abort(). Codes are noxy::ErrorCode, the C numbers.
// - Strings. std::string_view parameters; identity and decision ids, options and settings
//   with an embedded NUL byte are refused (ErrorCode::invalid_argument, "<name>: contains a
//   NUL byte") before the C library is called. Payloads are passed as (data, size): the exact
//   bytes are validated and encrypted.
// - Threads. A Client is safe to use from any number of threads at once (its methods are
//   const). It must not be destroyed while another thread is inside one of its calls.
// - Async. Every call has three async forms: `*_async(args...)` returns a
//   std::future<Result<T>>; `*_async(args..., callable)` calls `callable(Result<T>)` once and
//   returns a Result<Operation> (the handle cancels); with C++20, `*_async(args...,
//   std::stop_token)` returns a future that std::stop_source::request_stop() cancels. A
//   callable runs on the client's completion thread, exactly once when the start succeeded and
//   never when it failed (then the Result<Operation> holds the error; a future holds it too).
//   Callables must not throw: they must be callable as noexcept (checked at compile time), as
//   an exception must never unwind into the C library (for the same reason, running out of
//   memory while a result is copied on the completion thread terminates). In a callable, do
//   not block (blocking calls fail there with invalid_argument; never wait on a future of the
//   same client there: its completion would wait for this callable to return), and use the
//   client only if it is sure to outlive the callable (capture a std::shared_ptr<Client>).
// - Operation. Destroying a noxy::Operation releases the handle without cancelling: dropping
//   the handle of a fire-and-forget operation must not end it (as with std::future and
//   std::thread::detach); cancel() explicitly, or pass a std::stop_token.
// - Shutdown. ~Client calls noxy_free, which never blocks: operations in flight end with
//   ErrorCode::cancelled and their callables still run, possibly after the destructor returned
//   (they own what they captured by value). To be sure no callable runs any more, call
//   close() and drain(timeout) first.
// - Logging. A noxy::LogSink wraps any callable `void(LogLevel, std::string_view) noexcept`
//   (const-callable: it runs on many threads at once); set it per client (Config::log) or for
//   the process (noxy::set_log_sink).
#ifndef NOXY_HPP
#define NOXY_HPP

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "noxy.h"

#if __cplusplus >= 202002L
#include <version>
#endif
#if defined(__cpp_lib_jthread)
#include <stop_token>
/// 1 when the std::stop_token overloads are available (C++20 with <stop_token>).
#define NOXY_HPP_HAS_STOP_TOKEN 1
#else
#define NOXY_HPP_HAS_STOP_TOKEN 0
#endif

#if defined(__cpp_exceptions) && !defined(NOXY_HPP_NO_EXCEPTIONS)
/// 1 when Result::value() throws noxy::Exception, 0 when it aborts (-fno-exceptions).
#define NOXY_HPP_EXCEPTIONS 1
#else
#define NOXY_HPP_EXCEPTIONS 0
#endif

namespace noxy {

/// The version of the C library loaded at run time, "MAJOR.MINOR.PATCH" (NOXY_VERSION_STRING
/// is the header's).
inline std::string_view version() noexcept { return noxy_version(); }

/// Stable error codes: the C numbers (NOXY_ERROR_*), named as noxy_error_code_name names them.
enum class ErrorCode : std::int32_t {
  ok = NOXY_OK,
  invalid_argument = NOXY_ERROR_INVALID_ARGUMENT,
  invalid_payload = NOXY_ERROR_INVALID_PAYLOAD,
  unavailable = NOXY_ERROR_UNAVAILABLE,
  deadline_exceeded = NOXY_ERROR_DEADLINE_EXCEEDED,
  unauthenticated = NOXY_ERROR_UNAUTHENTICATED,
  permission_denied = NOXY_ERROR_PERMISSION_DENIED,
  rejected = NOXY_ERROR_REJECTED,
  not_found = NOXY_ERROR_NOT_FOUND,
  wait_timed_out = NOXY_ERROR_WAIT_TIMED_OUT,
  cancelled = NOXY_ERROR_CANCELLED,
  no_decision_id = NOXY_ERROR_NO_DECISION_ID,
  protocol = NOXY_ERROR_PROTOCOL,
  internal = NOXY_ERROR_INTERNAL,
};

/// A decision's outcome (the C numbers, NOXY_OUTCOME_*).
enum class Outcome : std::int32_t {
  pending = NOXY_OUTCOME_PENDING,
  approved = NOXY_OUTCOME_APPROVED,
  rejected = NOXY_OUTCOME_REJECTED,
  expired = NOXY_OUTCOME_EXPIRED,
};

/// The relay's answer for one device (the C numbers, NOXY_DELIVERY_*).
enum class DeliveryStatus : std::int32_t {
  delivered = NOXY_DELIVERY_DELIVERED,
  queued = NOXY_DELIVERY_QUEUED,
  no_devices = NOXY_DELIVERY_NO_DEVICES,
  rejected = NOXY_DELIVERY_REJECTED,
  error = NOXY_DELIVERY_ERROR,
};

/// The app's quota status (the C numbers, NOXY_QUOTA_*).
enum class QuotaStatus : std::int32_t {
  active = NOXY_QUOTA_ACTIVE,
  suspended = NOXY_QUOTA_SUSPENDED,
  deleted = NOXY_QUOTA_DELETED,
};

/// Log levels, most severe first (the C numbers, NOXY_LOG_*).
enum class LogLevel : std::int32_t {
  off = NOXY_LOG_OFF,
  error = NOXY_LOG_ERROR,
  warn = NOXY_LOG_WARN,
  info = NOXY_LOG_INFO,
  debug = NOXY_LOG_DEBUG,
  trace = NOXY_LOG_TRACE,
};

/// "wait_timed_out", "ok", ... ("unknown" for a number this version does not know).
inline std::string_view to_string(ErrorCode code) noexcept {
  return noxy_error_code_name(static_cast<std::int32_t>(code));
}
/// "APPROVED", ... ("UNKNOWN" for a number this version does not know).
inline std::string_view to_string(Outcome outcome) noexcept {
  return noxy_outcome_name(static_cast<std::int32_t>(outcome));
}
/// "DELIVERED", ... ("UNKNOWN" for a number this version does not know).
inline std::string_view to_string(DeliveryStatus status) noexcept {
  return noxy_delivery_status_name(static_cast<std::int32_t>(status));
}

/// The SHA-256 of the exact payload bytes every device received.
using Digest = std::array<std::uint8_t, 32>;

/// The result of routing a decision to one device.
struct Delivery {
  std::string device_id;
  /// The request id of this device's RouteDecision (kept across retries).
  std::string request_id;
  DeliveryStatus status = DeliveryStatus::error;
  /// The decision id the relay answered; none when the delivery failed in the library.
  std::optional<std::string> decision_id;
  /// ErrorCode::ok when the relay answered for this device, else why this delivery failed.
  ErrorCode error_code = ErrorCode::ok;
  std::optional<std::string> error_message;
};

/// An error: a stable code, a message (never the token or a payload), and, for
/// no_decision_id, errors while waiting after a send and a cancelled send, the per-device
/// results.
struct Error {
  ErrorCode code = ErrorCode::ok;
  std::string message;
  std::vector<Delivery> deliveries;
};

/// Thrown by Result::value() on a failed result when exceptions are enabled.
class Exception : public std::runtime_error {
 public:
  explicit Exception(Error error)
      : std::runtime_error(std::string(to_string(error.code)) + ": " + error.message),
        error_(std::move(error)) {}
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

namespace detail {
[[noreturn]] inline void fail(const Error& error) {
#if NOXY_HPP_EXCEPTIONS
  throw Exception(error);
#else
  std::fprintf(stderr, "noxy: value() of a failed Result: %s: %s\n",
               noxy_error_code_name(static_cast<std::int32_t>(error.code)), error.message.c_str());
  std::abort();
#endif
}

inline const Error& ok_error() noexcept {
  static const Error ok{};
  return ok;
}
}  // namespace detail

/// The value of a call or the Error that ended it, in the style of absl::StatusOr<T>.
/// Test it with ok() or `if (result)`; read it with `*result`, `result->field` or value().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /// ErrorCode::ok for a value, else the error's code.
  ErrorCode code() const noexcept { return ok() ? ErrorCode::ok : std::get<1>(state_).code; }
  /// The error; an Error with ErrorCode::ok and no message when this holds a value.
  const Error& error() const& noexcept { return ok() ? detail::ok_error() : std::get<1>(state_); }
  Error error() && { return ok() ? Error{} : std::move(std::get<1>(state_)); }

  /// The value; on an error throws noxy::Exception (or aborts without exceptions).
  T& value() & {
    if (!ok()) detail::fail(std::get<1>(state_));
    return std::get<0>(state_);
  }
  const T& value() const& {
    if (!ok()) detail::fail(std::get<1>(state_));
    return std::get<0>(state_);
  }
  T&& value() && {
    if (!ok()) detail::fail(std::get<1>(state_));
    return std::move(std::get<0>(state_));
  }
  /// The value, or `fallback` on an error.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <typename U>
  T value_or(U&& fallback) && {
    return ok() ? std::move(std::get<0>(state_)) : static_cast<T>(std::forward<U>(fallback));
  }
  /// The value; calling these on an error is a precondition violation, checked like value().
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

/// The result of a call without a value: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(Error error) : error_(std::move(error)) {}

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  ErrorCode code() const noexcept { return ok() ? ErrorCode::ok : error_->code; }
  const Error& error() const& noexcept { return ok() ? detail::ok_error() : *error_; }
  Error error() && { return ok() ? Error{} : std::move(*error_); }
  /// Throws noxy::Exception (or aborts without exceptions) on an error.
  void value() const {
    if (!ok()) detail::fail(*error_);
  }

 private:
  std::optional<Error> error_;
};

/// What send_decision returns.
struct SendResult {
  /// The decision id this client generated and sent to every device.
  std::string decision_id;
  /// The decision id of the first delivery the relay accepted (DELIVERED or QUEUED): the one
  /// to wait on; none when no device accepted it.
  std::optional<std::string> accepted_decision_id;
  Digest plaintext_sha256{};
  /// One per device of the identity.
  std::vector<Delivery> deliveries;
};

/// A decision's state: terminal from send_and_wait and wait_for_outcome, possibly pending from
/// get_decision_outcome.
struct DecisionResult {
  Outcome outcome = Outcome::pending;
  /// Whether the relay still waits for an answer.
  bool pending = false;
  /// The decision this is about (for send_and_wait: the id that was waited on).
  std::string decision_id;
  /// send_and_wait only: the SHA-256 of the exact payload bytes every device received.
  std::optional<Digest> plaintext_sha256;
  /// send_and_wait only: the per-device results.
  std::vector<Delivery> deliveries;
};

/// The app's quota.
struct Quota {
  std::string app_name;
  std::uint64_t total = 0;
  std::uint64_t remaining = 0;
  QuotaStatus status = QuotaStatus::active;
};

/// A device registered for an identity.
struct Device {
  std::string device_id;
  /// The classical (Ed25519) public key.
  std::vector<std::uint8_t> public_key;
  /// The ML-KEM-768 public key (1184 bytes when well-formed).
  std::vector<std::uint8_t> pq_public_key;
};

/// A log sink: any callable `void(LogLevel, std::string_view) noexcept`, called as const,
/// concurrently from any thread (keep it short, thread-safe, non-blocking; the message is
/// valid only during the call). It must not call this library except to_string and version.
/// Copies share the one callable, which is destroyed after its last call.
class LogSink {
 public:
  LogSink() noexcept = default;
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, LogSink> &&
                                                    std::is_invocable_v<const std::decay_t<F>&, LogLevel,
                                                                        std::string_view>>>
  LogSink(F&& sink)  // NOLINT(google-explicit-constructor): a lambda converts implicitly
      : state_(std::make_shared<const std::decay_t<F>>(std::forward<F>(sink))),
        call_(&call<std::decay_t<F>>) {
    static_assert(std::is_nothrow_invocable_v<const std::decay_t<F>&, LogLevel, std::string_view>,
                  "a noxy::LogSink callable must be noexcept: it runs on the library's threads, and an "
                  "exception must never unwind into the C library");
  }
  explicit operator bool() const noexcept { return state_ != nullptr; }
  void operator()(LogLevel level, std::string_view message) const noexcept {
    if (state_) call_(state_.get(), level, message);
  }

 private:
  template <typename F>
  static void call(const void* sink, LogLevel level, std::string_view message) noexcept {
    (*static_cast<const F*>(sink))(level, message);
  }
  std::shared_ptr<const void> state_;
  void (*call_)(const void*, LogLevel, std::string_view) noexcept = nullptr;
};

/// The pause between retries of transient failures (noxy_config_set_retry_backoff).
struct RetryBackoff {
  std::chrono::milliseconds initial{100};
  double multiplier = 2.0;
  std::chrono::milliseconds max{2000};
  double jitter = 0.2;
};

/// A client's configuration. Unset fields keep the library's defaults (noxy_config_new). The
/// library checks every value (Client::create reports the first invalid one by name).
struct Config {
  /// `https://relay.noxy.network`, `host:port`, `127.0.0.1:50051` (always TLS). Required.
  std::string endpoint;
  /// The app's bearer token (visible ASCII). Required. Copied; never logged.
  std::string app_token;
  /// How long the relay keeps a decision open before it expires (default 600 s).
  std::optional<std::chrono::seconds> decision_ttl;
  /// Trust only these root certificates (PEM text), or those of this PEM file, instead of the
  /// public web PKI. Set at most one of the two (the file is applied last).
  std::optional<std::string> ca_pem;
  std::optional<std::string> ca_pem_file;
  /// DNS, TCP and TLS together (default 10 s).
  std::optional<std::chrono::milliseconds> connect_timeout;
  /// Each RPC attempt (default 30 s).
  std::optional<std::chrono::milliseconds> request_timeout;
  /// Attempts per call including the first: 1 disables retries, 0 removes the cap (default).
  std::optional<std::uint32_t> max_attempts;
  std::optional<RetryBackoff> retry_backoff;
  /// How long transient failures are retried (default 30 s; 0 disables retries).
  std::optional<std::chrono::milliseconds> retry_budget;
  /// Runtime worker threads of the client (1 to 64; default 2).
  std::optional<std::uint32_t> worker_threads;
  /// RPCs in flight at once (1 to 10 000; default 100).
  std::optional<std::uint32_t> max_concurrent_requests;
  /// true: share one process-wide runtime and completion thread with other such clients.
  std::optional<bool> shared_runtime;
  std::optional<std::string> user_agent;
  /// This client's own logger (instead of the process-wide one), for events up to log_level.
  LogSink log;
  LogLevel log_level = LogLevel::info;
};

/// Options of one decision (noxy_send_options).
struct SendOptions {
  /// Re-sending the same decision (same key, payload and TTL) yields the existing one.
  std::optional<std::string> idempotency_key;
  /// This decision's TTL instead of the client's (0 s: the client's).
  std::optional<std::chrono::seconds> ttl;
};

/// How to wait for an outcome (noxy_wait_options; defaults: 400 ms, x1.6, at most 30 s
/// between polls, at most 15 minutes in total, no jitter).
struct WaitOptions {
  std::optional<std::chrono::milliseconds> initial_interval;
  std::optional<double> multiplier;
  std::optional<std::chrono::milliseconds> max_interval;
  /// The whole wait's budget; then ErrorCode::wait_timed_out.
  std::optional<std::chrono::milliseconds> max_wait;
  std::optional<double> jitter;
};

namespace detail {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* object) const noexcept { Free(object); }
};
template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

inline std::string copy(const char* text) { return text != nullptr ? std::string(text) : std::string(); }
inline std::optional<std::string> copy_optional(const char* text) {
  if (text == nullptr) return std::nullopt;
  return std::string(text);
}

inline Delivery to_delivery(const noxy_delivery* delivery) {
  Delivery out;
  out.device_id = copy(noxy_delivery_device_id(delivery));
  out.request_id = copy(noxy_delivery_request_id(delivery));
  out.status = static_cast<DeliveryStatus>(noxy_delivery_status(delivery));
  out.decision_id = copy_optional(noxy_delivery_decision_id(delivery));
  out.error_code = static_cast<ErrorCode>(noxy_delivery_error_code(delivery));
  out.error_message = copy_optional(noxy_delivery_error_message(delivery));
  return out;
}

/// Copies an error out of the C object and frees it.
inline Error take_error(noxy_error* raw) {
  Owned<noxy_error, noxy_error_free> owned(raw);
  Error error;
  error.code = static_cast<ErrorCode>(noxy_error_code(raw));
  error.message = copy(noxy_error_message(raw));
  const std::size_t count = noxy_error_delivery_count(raw);
  error.deliveries.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    error.deliveries.push_back(to_delivery(noxy_error_delivery(raw, i)));
  return error;
}

/// Success (nullopt) or the error, freed.
inline std::optional<Error> check(noxy_error* raw) {
  if (raw == nullptr) return std::nullopt;
  return take_error(raw);
}

inline Error invalid_argument(std::string_view name, std::string_view what) {
  Error error;
  error.code = ErrorCode::invalid_argument;
  error.message.reserve(name.size() + 2 + what.size());
  error.message.append(name).append(": ").append(what);
  return error;
}

/// A NUL-terminated copy of a string, or the error when it contains a NUL byte.
inline std::optional<Error> c_string(std::string_view text, const char* name, std::string& out) {
  if (text.find('\0') != std::string_view::npos) return invalid_argument(name, "contains a NUL byte");
  out.assign(text.data(), text.size());
  return std::nullopt;
}

/// A duration as the unsigned count the C ABI takes, or the error when it is negative or too
/// large for that type (the library checks the range it accepts).
template <typename Out, typename Rep, typename Period>
std::optional<Error> count(std::chrono::duration<Rep, Period> duration, const char* name, Out& out) {
  if (duration.count() < 0) return invalid_argument(name, "must not be negative");
  if (static_cast<std::uint64_t>(duration.count()) > std::numeric_limits<Out>::max())
    return invalid_argument(name, "is out of range");
  out = static_cast<Out>(duration.count());
  return std::nullopt;
}

template <typename T, typename C>
struct Kind;

template <>
struct Kind<DecisionResult, noxy_decision_result> {
  static DecisionResult convert(const noxy_decision_result* raw) {
    DecisionResult out;
    out.outcome = static_cast<Outcome>(noxy_decision_result_outcome(raw));
    out.pending = noxy_decision_result_is_pending(raw) == 1;
    out.decision_id = copy(noxy_decision_result_decision_id(raw));
    Digest digest{};
    if (noxy_decision_result_plaintext_sha256(raw, digest.data()) == 1) out.plaintext_sha256 = digest;
    const std::size_t n = noxy_decision_result_delivery_count(raw);
    out.deliveries.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      out.deliveries.push_back(to_delivery(noxy_decision_result_delivery(raw, i)));
    return out;
  }
  static void free(noxy_decision_result* raw) noexcept { noxy_decision_result_free(raw); }
};

template <>
struct Kind<SendResult, noxy_send_result> {
  static SendResult convert(const noxy_send_result* raw) {
    SendResult out;
    out.decision_id = copy(noxy_send_result_decision_id(raw));
    out.accepted_decision_id = copy_optional(noxy_send_result_accepted_decision_id(raw));
    noxy_send_result_plaintext_sha256(raw, out.plaintext_sha256.data());
    const std::size_t n = noxy_send_result_delivery_count(raw);
    out.deliveries.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      out.deliveries.push_back(to_delivery(noxy_send_result_delivery(raw, i)));
    return out;
  }
  static void free(noxy_send_result* raw) noexcept { noxy_send_result_free(raw); }
};

template <>
struct Kind<Quota, noxy_quota> {
  static Quota convert(const noxy_quota* raw) {
    Quota out;
    out.app_name = copy(noxy_quota_app_name(raw));
    out.total = noxy_quota_total(raw);
    out.remaining = noxy_quota_remaining(raw);
    out.status = static_cast<QuotaStatus>(noxy_quota_status(raw));
    return out;
  }
  static void free(noxy_quota* raw) noexcept { noxy_quota_free(raw); }
};

template <>
struct Kind<std::vector<Device>, noxy_devices> {
  static std::vector<Device> convert(const noxy_devices* raw) {
    std::vector<Device> out;
    const std::size_t n = noxy_devices_count(raw);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      Device device;
      device.device_id = copy(noxy_devices_device_id(raw, i));
      std::size_t len = 0;
      if (const std::uint8_t* key = noxy_devices_public_key(raw, i, &len))
        device.public_key.assign(key, key + len);
      len = 0;
      if (const std::uint8_t* key = noxy_devices_pq_public_key(raw, i, &len))
        device.pq_public_key.assign(key, key + len);
      out.push_back(std::move(device));
    }
    return out;
  }
  static void free(noxy_devices* raw) noexcept { noxy_devices_free(raw); }
};

/// The value or the error of a finished C call; frees both C objects.
template <typename T, typename C>
Result<T> take(noxy_error* error, C* raw) {
  std::unique_ptr<C, void (*)(C*) noexcept> owned(raw, &Kind<T, C>::free);
  if (error != nullptr) return take_error(error);
  return Kind<T, C>::convert(raw);
}

// ---- async plumbing ----

/// What a C completion callback receives as user_data: the callable, owned until it ran.
template <typename F>
struct Completion {
  F callable;
};

/// The C completion callback: takes the Completion back, copies the result out, frees the C
/// objects, calls the callable once and destroys it. Runs on the completion thread. The
/// callable is noexcept (checked where it is accepted), so nothing unwinds into C.
template <typename T, typename C, typename F>
void complete(void* user_data, noxy_error* error, C* raw) noexcept {
  std::unique_ptr<Completion<F>> completion(static_cast<Completion<F>*>(user_data));
  std::move(completion->callable)(take<T, C>(error, raw));
}

/// Fulfils a promise: the callable of the future forms.
template <typename T>
struct Fulfil {
  std::promise<Result<T>> promise;
  void operator()(Result<T> result) noexcept { promise.set_value(std::move(result)); }
};

template <typename F, typename T>
using if_callback = std::enable_if_t<std::is_invocable_v<std::decay_t<F>, Result<T>>, int>;

template <typename F, typename T>
constexpr void check_callback() {
  static_assert(std::is_nothrow_invocable_v<std::decay_t<F>, Result<T>>,
                "a noxy completion callable must be noexcept: it runs on the library's "
                "completion thread, and an exception must never unwind into the C library");
}

template <typename C>
using callback_of = void (*)(void*, noxy_error*, C*);

/// Starts an operation whose completion calls `callable`. `start(callback, user_data,
/// out_operation)` checks the arguments and calls the C `_async` function; it returns the
/// error when nothing was started (then the callable is destroyed without being called).
template <typename T, typename C, typename F, typename Start>
std::pair<std::optional<Error>, noxy_operation*> start(F&& callable, Start&& start_call,
                                                       bool want_operation) {
  using Callable = std::decay_t<F>;
  auto* completion = new Completion<Callable>{Callable(std::forward<F>(callable))};
  noxy_operation* operation = nullptr;
  // On success the completion belongs to the C library (the callback deletes it, possibly
  // before start_call returns); on failure nothing was started and it is still ours.
  std::optional<Error> error =
      start_call(static_cast<callback_of<C>>(&complete<T, C, Callable>), static_cast<void*>(completion),
                 want_operation ? &operation : nullptr);
  if (error) delete completion;
  return {std::move(error), operation};
}

template <typename T, typename C, typename Start>
std::future<Result<T>> start_future(Start&& start_call) {
  std::promise<Result<T>> promise;
  std::future<Result<T>> future = promise.get_future();
  auto* completion = new Completion<Fulfil<T>>{Fulfil<T>{std::move(promise)}};
  std::optional<Error> error = start_call(static_cast<callback_of<C>>(&complete<T, C, Fulfil<T>>),
                                          static_cast<void*>(completion), nullptr);
  if (error) {
    // Nothing started: the future holds the error.
    completion->callable(Result<T>(std::move(*error)));
    delete completion;
  }
  return future;
}

}  // namespace detail

/// A started async operation: cancel() makes its completion report ErrorCode::cancelled
/// (unless it had finished). Move-only. The destructor releases the handle WITHOUT cancelling
/// (noxy_operation_free): dropping the handle of a fire-and-forget operation must not end it,
/// as with std::future and std::thread::detach; cancel explicitly, or use the std::stop_token
/// overloads for cancel-on-request. A handle outlives its client and its completion.
class Operation {
 public:
  Operation() noexcept = default;
  /// Idempotent, any thread, also after the completion ran or the client was destroyed. Fails
  /// with invalid_argument on an empty (default-constructed or moved-from) handle.
  Result<void> cancel() const {
    if (auto error = detail::check(noxy_operation_cancel(handle_.get()))) return std::move(*error);
    return {};
  }
  /// false for an empty handle.
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  friend class Client;
  explicit Operation(noxy_operation* handle) noexcept : handle_(handle) {}
  detail::Owned<noxy_operation, noxy_operation_free> handle_;
};

namespace detail {
inline void log_trampoline(noxy_log_level level, const char* message, void* user_data) noexcept {
  (*static_cast<const LogSink*>(user_data))(
      static_cast<LogLevel>(level), message != nullptr ? std::string_view(message) : std::string_view());
}
inline void log_release(void* user_data) noexcept { delete static_cast<LogSink*>(user_data); }

inline Result<Owned<noxy_config, noxy_config_free>> make_config(const Config& config) {
  Owned<noxy_config, noxy_config_free> raw(noxy_config_new());
  std::string text;
  auto set_text = [&](std::string_view value, const char* name,
                      noxy_error* (*setter)(noxy_config*, const char*)) -> std::optional<Error> {
    if (auto error = c_string(value, name, text)) return error;
    return check(setter(raw.get(), text.c_str()));
  };
  std::optional<Error> error;
  auto ms = [&](const std::optional<std::chrono::milliseconds>& value, const char* name,
                noxy_error* (*setter)(noxy_config*, std::uint64_t)) -> std::optional<Error> {
    if (!value) return std::nullopt;
    std::uint64_t n = 0;
    if (auto e = count(*value, name, n)) return e;
    return check(setter(raw.get(), n));
  };
  if ((error = set_text(config.endpoint, "endpoint", &noxy_config_set_endpoint))) return std::move(*error);
  if ((error = set_text(config.app_token, "app_token", &noxy_config_set_app_token))) return std::move(*error);
  if (config.decision_ttl) {
    std::uint32_t seconds = 0;
    if ((error = count(*config.decision_ttl, "decision_ttl_seconds", seconds))) return std::move(*error);
    if ((error = check(noxy_config_set_decision_ttl_seconds(raw.get(), seconds)))) return std::move(*error);
  }
  if (config.ca_pem && (error = set_text(*config.ca_pem, "ca_pem", &noxy_config_set_ca_pem)))
    return std::move(*error);
  if (config.ca_pem_file &&
      (error = set_text(*config.ca_pem_file, "ca_pem_path", &noxy_config_set_ca_pem_file)))
    return std::move(*error);
  if ((error = ms(config.connect_timeout, "connect_timeout", &noxy_config_set_connect_timeout_ms)))
    return std::move(*error);
  if ((error = ms(config.request_timeout, "request_timeout", &noxy_config_set_request_timeout_ms)))
    return std::move(*error);
  if (config.max_attempts && (error = check(noxy_config_set_max_attempts(raw.get(), *config.max_attempts))))
    return std::move(*error);
  if (config.retry_backoff) {
    std::uint64_t initial = 0, max = 0;
    if ((error = count(config.retry_backoff->initial, "retry.initial_backoff", initial)))
      return std::move(*error);
    if ((error = count(config.retry_backoff->max, "retry.max_backoff", max))) return std::move(*error);
    if ((error = check(noxy_config_set_retry_backoff(raw.get(), initial, config.retry_backoff->multiplier,
                                                     max, config.retry_backoff->jitter))))
      return std::move(*error);
  }
  if ((error = ms(config.retry_budget, "retry.budget", &noxy_config_set_retry_budget_ms)))
    return std::move(*error);
  if (config.worker_threads &&
      (error = check(noxy_config_set_worker_threads(raw.get(), *config.worker_threads))))
    return std::move(*error);
  if (config.max_concurrent_requests &&
      (error = check(noxy_config_set_max_concurrent_requests(raw.get(), *config.max_concurrent_requests))))
    return std::move(*error);
  if (config.shared_runtime &&
      (error = check(noxy_config_set_shared_runtime(raw.get(), *config.shared_runtime ? 1 : 0))))
    return std::move(*error);
  if (config.user_agent && (error = set_text(*config.user_agent, "user_agent", &noxy_config_set_user_agent)))
    return std::move(*error);
  if (config.log) {
    // On success the library owns the copy and releases it (log_release) after its last call.
    auto* sink = new LogSink(config.log);
    if ((error = check(noxy_config_set_log_callback(raw.get(), &log_trampoline, sink, &log_release,
                                                    static_cast<std::int32_t>(config.log_level))))) {
      delete sink;  // the library took nothing
      return std::move(*error);
    }
  }
  return raw;
}

using SendOptionsPtr = Owned<noxy_send_options, noxy_send_options_free>;
using WaitOptionsPtr = Owned<noxy_wait_options, noxy_wait_options_free>;

/// The C send options, or NULL (the defaults) when nothing is set.
inline std::optional<Error> make_send_options(const SendOptions& options, SendOptionsPtr& out) {
  if (!options.idempotency_key && !options.ttl) return std::nullopt;
  out.reset(noxy_send_options_new());
  std::optional<Error> error;
  if (options.idempotency_key) {
    std::string key;
    if ((error = c_string(*options.idempotency_key, "idempotency_key", key))) return error;
    if ((error = check(noxy_send_options_set_idempotency_key(out.get(), key.c_str())))) return error;
  }
  if (options.ttl) {
    std::uint32_t seconds = 0;
    if ((error = count(*options.ttl, "ttl_seconds", seconds))) return error;
    if ((error = check(noxy_send_options_set_ttl_seconds(out.get(), seconds)))) return error;
  }
  return std::nullopt;
}

/// The C wait options, or NULL (the defaults) when nothing is set.
inline std::optional<Error> make_wait_options(const WaitOptions& options, WaitOptionsPtr& out) {
  if (!options.initial_interval && !options.multiplier && !options.max_interval && !options.max_wait &&
      !options.jitter)
    return std::nullopt;
  out.reset(noxy_wait_options_new());
  std::optional<Error> error;
  auto ms = [&](const std::optional<std::chrono::milliseconds>& value, const char* name,
                noxy_error* (*setter)(noxy_wait_options*, std::uint64_t)) -> std::optional<Error> {
    if (!value) return std::nullopt;
    std::uint64_t n = 0;
    if (auto e = count(*value, name, n)) return e;
    return check(setter(out.get(), n));
  };
  if ((error = ms(options.initial_interval, "initial_interval", &noxy_wait_options_set_initial_interval_ms)))
    return error;
  if (options.multiplier && (error = check(noxy_wait_options_set_multiplier(out.get(), *options.multiplier))))
    return error;
  if ((error = ms(options.max_interval, "max_interval", &noxy_wait_options_set_max_interval_ms)))
    return error;
  if ((error = ms(options.max_wait, "max_wait", &noxy_wait_options_set_max_wait_ms))) return error;
  if (options.jitter && (error = check(noxy_wait_options_set_jitter(out.get(), *options.jitter))))
    return error;
  return std::nullopt;
}

/// A payload as the (pointer, length) pair the C ABI takes (never a NULL pointer).
inline const char* payload_data(std::string_view payload) noexcept {
  return payload.data() != nullptr ? payload.data() : "";
}

#if NOXY_HPP_HAS_STOP_TOKEN
/// Cancels an operation when a stop is requested.
struct CancelOnStop {
  noxy_operation* operation;
  void operator()() const noexcept { noxy_error_free(noxy_operation_cancel(operation)); }
};

/// The state a stop-token future shares between the starting thread and the completion: the
/// promise, the operation handle and the registered stop callback (deregistered before the
/// handle is freed, by member order, when the last owner lets go).
template <typename T>
struct StopState {
  std::promise<Result<T>> promise;
  Operation operation;
  std::optional<std::stop_callback<CancelOnStop>> on_stop;
};

template <typename T>
struct FulfilShared {
  std::shared_ptr<StopState<T>> state;
  void operator()(Result<T> result) noexcept { state->promise.set_value(std::move(result)); }
};
#endif

}  // namespace detail

/// A client of the Noxy relay (noxy_client): move-only; its destructor calls noxy_free, which
/// never blocks. Safe to share between threads by reference (methods are const); an empty
/// (moved-from) client answers every call with ErrorCode::invalid_argument.
class Client {
 public:
  /// Creates a client (validating the whole configuration; the error names the first invalid
  /// field). Does not connect: the relay is contacted on the first call.
  [[nodiscard]] static Result<Client> create(const Config& config) {
    auto raw_config = detail::make_config(config);
    if (!raw_config) return std::move(raw_config).error();
    noxy_client* raw = nullptr;
    if (auto error = detail::check(noxy_client_new(raw_config->get(), &raw))) return std::move(*error);
    return Client(raw);
  }

  Client() noexcept = default;
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;
  ~Client() = default;

  /// false for an empty (default-constructed or moved-from) client.
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  /// The C handle, still owned by this Client (for C functions this binding lacks).
  noxy_client* native_handle() const noexcept { return handle_.get(); }

  // ---- blocking calls: any host thread; refused (invalid_argument) in completion callables ----

  /// Routes a decision to every device of `identity_id` and waits until it is approved,
  /// rejected or expired (or an error ends it: wait_timed_out, no_decision_id, ...).
  Result<DecisionResult> send_and_wait(std::string_view identity_id, std::string_view payload_json,
                                       const SendOptions& send = {}, const WaitOptions& wait = {}) const {
    return blocking<DecisionResult, noxy_decision_result>([&](noxy_decision_result** out) {
      return send_and_wait_start(identity_id, payload_json, send, wait, out);
    });
  }
  /// Routes a decision to every device of `identity_id` without waiting for an answer.
  Result<SendResult> send_decision(std::string_view identity_id, std::string_view payload_json,
                                   const SendOptions& send = {}) const {
    return blocking<SendResult, noxy_send_result>(
        [&](noxy_send_result** out) { return send_decision_start(identity_id, payload_json, send, out); });
  }
  /// Polls until the decision is approved, rejected or expired, within the wait budget.
  Result<DecisionResult> wait_for_outcome(std::string_view decision_id, std::string_view identity_id,
                                          const WaitOptions& wait = {}) const {
    return blocking<DecisionResult, noxy_decision_result>([&](noxy_decision_result** out) {
      return wait_for_outcome_start(decision_id, identity_id, wait, out);
    });
  }
  /// Asks the relay once for the decision's state (possibly Outcome::pending).
  Result<DecisionResult> get_decision_outcome(std::string_view decision_id,
                                              std::string_view identity_id) const {
    return blocking<DecisionResult, noxy_decision_result>([&](noxy_decision_result** out) {
      return get_decision_outcome_start(decision_id, identity_id, out);
    });
  }
  /// The app's quota.
  Result<Quota> get_quota() const {
    return blocking<Quota, noxy_quota>([&](noxy_quota** out) -> std::optional<Error> {
      return detail::check(noxy_get_quota(handle_.get(), out));
    });
  }
  /// The devices registered for `identity_id` (empty when it has none).
  Result<std::vector<Device>> get_identity_devices(std::string_view identity_id) const {
    return blocking<std::vector<Device>, noxy_devices>(
        [&](noxy_devices** out) { return get_identity_devices_start(identity_id, out); });
  }

  // ---- async: future, callable (returns the Operation), C++20 stop_token ----

  std::future<Result<DecisionResult>> send_and_wait_async(std::string_view identity_id,
                                                          std::string_view payload_json,
                                                          const SendOptions& send = {},
                                                          const WaitOptions& wait = {}) const {
    return detail::start_future<DecisionResult, noxy_decision_result>(
        [&](auto cb, void* ud, noxy_operation** op) {
          return send_and_wait_start(identity_id, payload_json, send, wait, cb, ud, op);
        });
  }
  template <typename F, detail::if_callback<F, DecisionResult> = 0>
  Result<Operation> send_and_wait_async(std::string_view identity_id, std::string_view payload_json,
                                        const SendOptions& send, const WaitOptions& wait,
                                        F&& callable) const {
    return with_callable<DecisionResult, noxy_decision_result>(
        std::forward<F>(callable), [&](auto cb, void* ud, noxy_operation** op) {
          return send_and_wait_start(identity_id, payload_json, send, wait, cb, ud, op);
        });
  }

  std::future<Result<SendResult>> send_decision_async(std::string_view identity_id,
                                                      std::string_view payload_json,
                                                      const SendOptions& send = {}) const {
    return detail::start_future<SendResult, noxy_send_result>([&](auto cb, void* ud, noxy_operation** op) {
      return send_decision_start(identity_id, payload_json, send, cb, ud, op);
    });
  }
  template <typename F, detail::if_callback<F, SendResult> = 0>
  Result<Operation> send_decision_async(std::string_view identity_id, std::string_view payload_json,
                                        const SendOptions& send, F&& callable) const {
    return with_callable<SendResult, noxy_send_result>(
        std::forward<F>(callable), [&](auto cb, void* ud, noxy_operation** op) {
          return send_decision_start(identity_id, payload_json, send, cb, ud, op);
        });
  }

  std::future<Result<DecisionResult>> wait_for_outcome_async(std::string_view decision_id,
                                                             std::string_view identity_id,
                                                             const WaitOptions& wait = {}) const {
    return detail::start_future<DecisionResult, noxy_decision_result>(
        [&](auto cb, void* ud, noxy_operation** op) {
          return wait_for_outcome_start(decision_id, identity_id, wait, cb, ud, op);
        });
  }
  template <typename F, detail::if_callback<F, DecisionResult> = 0>
  Result<Operation> wait_for_outcome_async(std::string_view decision_id, std::string_view identity_id,
                                           const WaitOptions& wait, F&& callable) const {
    return with_callable<DecisionResult, noxy_decision_result>(
        std::forward<F>(callable), [&](auto cb, void* ud, noxy_operation** op) {
          return wait_for_outcome_start(decision_id, identity_id, wait, cb, ud, op);
        });
  }

  std::future<Result<DecisionResult>> get_decision_outcome_async(std::string_view decision_id,
                                                                 std::string_view identity_id) const {
    return detail::start_future<DecisionResult, noxy_decision_result>(
        [&](auto cb, void* ud, noxy_operation** op) {
          return get_decision_outcome_start(decision_id, identity_id, cb, ud, op);
        });
  }
  template <typename F, detail::if_callback<F, DecisionResult> = 0>
  Result<Operation> get_decision_outcome_async(std::string_view decision_id, std::string_view identity_id,
                                               F&& callable) const {
    return with_callable<DecisionResult, noxy_decision_result>(
        std::forward<F>(callable), [&](auto cb, void* ud, noxy_operation** op) {
          return get_decision_outcome_start(decision_id, identity_id, cb, ud, op);
        });
  }

  std::future<Result<Quota>> get_quota_async() const {
    return detail::start_future<Quota, noxy_quota>(
        [&](auto cb, void* ud, noxy_operation** op) { return get_quota_start(cb, ud, op); });
  }
  template <typename F, detail::if_callback<F, Quota> = 0>
  Result<Operation> get_quota_async(F&& callable) const {
    return with_callable<Quota, noxy_quota>(
        std::forward<F>(callable),
        [&](auto cb, void* ud, noxy_operation** op) { return get_quota_start(cb, ud, op); });
  }

  std::future<Result<std::vector<Device>>> get_identity_devices_async(std::string_view identity_id) const {
    return detail::start_future<std::vector<Device>, noxy_devices>(
        [&](auto cb, void* ud, noxy_operation** op) {
          return get_identity_devices_start(identity_id, cb, ud, op);
        });
  }
  template <typename F, detail::if_callback<F, std::vector<Device>> = 0>
  Result<Operation> get_identity_devices_async(std::string_view identity_id, F&& callable) const {
    return with_callable<std::vector<Device>, noxy_devices>(
        std::forward<F>(callable), [&](auto cb, void* ud, noxy_operation** op) {
          return get_identity_devices_start(identity_id, cb, ud, op);
        });
  }

#if NOXY_HPP_HAS_STOP_TOKEN
  /// C++20: as the future forms; `stop.request_stop()` (any thread) cancels the operation.
  std::future<Result<DecisionResult>> send_and_wait_async(std::string_view identity_id,
                                                          std::string_view payload_json,
                                                          const SendOptions& send, const WaitOptions& wait,
                                                          std::stop_token stop) const {
    return with_stop<DecisionResult, noxy_decision_result>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) {
          return send_and_wait_start(identity_id, payload_json, send, wait, cb, ud, op);
        });
  }
  std::future<Result<SendResult>> send_decision_async(std::string_view identity_id,
                                                      std::string_view payload_json, const SendOptions& send,
                                                      std::stop_token stop) const {
    return with_stop<SendResult, noxy_send_result>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) {
          return send_decision_start(identity_id, payload_json, send, cb, ud, op);
        });
  }
  std::future<Result<DecisionResult>> wait_for_outcome_async(std::string_view decision_id,
                                                             std::string_view identity_id,
                                                             const WaitOptions& wait,
                                                             std::stop_token stop) const {
    return with_stop<DecisionResult, noxy_decision_result>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) {
          return wait_for_outcome_start(decision_id, identity_id, wait, cb, ud, op);
        });
  }
  std::future<Result<DecisionResult>> get_decision_outcome_async(std::string_view decision_id,
                                                                 std::string_view identity_id,
                                                                 std::stop_token stop) const {
    return with_stop<DecisionResult, noxy_decision_result>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) {
          return get_decision_outcome_start(decision_id, identity_id, cb, ud, op);
        });
  }
  std::future<Result<Quota>> get_quota_async(std::stop_token stop) const {
    return with_stop<Quota, noxy_quota>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) { return get_quota_start(cb, ud, op); });
  }
  std::future<Result<std::vector<Device>>> get_identity_devices_async(std::string_view identity_id,
                                                                      std::stop_token stop) const {
    return with_stop<std::vector<Device>, noxy_devices>(
        std::move(stop), [&](auto cb, void* ud, noxy_operation** op) {
          return get_identity_devices_start(identity_id, cb, ud, op);
        });
  }
#endif

  // ---- shutdown ----

  /// Ends every call in flight and every later call with ErrorCode::cancelled; returns at once
  /// (the callables of async operations still run: drain() waits for them). Idempotent.
  Result<void> close() const {
    if (auto error = detail::check(noxy_client_close(handle_.get()))) return std::move(*error);
    return {};
  }
  /// Waits until every async operation has ended and its callable has returned, at most
  /// `timeout` (0: just check); then deadline_exceeded. Does not cancel (close() first).
  /// Host threads only (invalid_argument in a completion callable).
  Result<void> drain(std::chrono::milliseconds timeout) const {
    std::uint64_t ms = 0;
    if (auto error = detail::count(timeout, "timeout_ms", ms)) return std::move(*error);
    if (auto error = detail::check(noxy_client_drain(handle_.get(), ms))) return std::move(*error);
    return {};
  }

 private:
  explicit Client(noxy_client* handle) noexcept : handle_(handle) {}

  template <typename T, typename C, typename Call>
  static Result<T> blocking(Call&& call) {
    C* raw = nullptr;
    if (auto error = call(&raw)) return std::move(*error);
    return detail::take<T, C>(nullptr, raw);
  }

  template <typename T, typename C, typename F, typename Start>
  static Result<Operation> with_callable(F&& callable, Start&& start_call) {
    detail::check_callback<F, T>();
    auto started = detail::start<T, C>(std::forward<F>(callable), std::forward<Start>(start_call), true);
    if (started.first) return std::move(*started.first);
    return Operation(started.second);
  }

#if NOXY_HPP_HAS_STOP_TOKEN
  template <typename T, typename C, typename Start>
  static std::future<Result<T>> with_stop(std::stop_token stop, Start&& start_call) {
    auto state = std::make_shared<detail::StopState<T>>();
    std::future<Result<T>> future = state->promise.get_future();
    auto started = detail::start<T, C>(detail::FulfilShared<T>{state}, std::forward<Start>(start_call), true);
    if (started.first) {
      state->promise.set_value(Result<T>(std::move(*started.first)));
      return future;
    }
    // The completion may already have run; `state` stays alive until both let go of it.
    state->operation = Operation(started.second);
    state->on_stop.emplace(std::move(stop), detail::CancelOnStop{started.second});
    return future;
  }
#endif

  // Each *_start checks the arguments, then calls the C function (blocking when given an out
  // pointer, async when given a callback, user data and an operation pointer), returning the
  // error or nullopt.
  std::optional<Error> prepare(std::string_view identity_id, std::string& identity, const SendOptions* send,
                               detail::SendOptionsPtr* send_raw, const WaitOptions* wait,
                               detail::WaitOptionsPtr* wait_raw) const {
    if (auto error = detail::c_string(identity_id, "identity_id", identity)) return error;
    if (send != nullptr)
      if (auto error = detail::make_send_options(*send, *send_raw)) return error;
    if (wait != nullptr)
      if (auto error = detail::make_wait_options(*wait, *wait_raw)) return error;
    return std::nullopt;
  }

  template <typename... Out>
  std::optional<Error> send_and_wait_start(std::string_view identity_id, std::string_view payload,
                                           const SendOptions& send, const WaitOptions& wait,
                                           Out... out) const {
    std::string identity;
    detail::SendOptionsPtr send_raw;
    detail::WaitOptionsPtr wait_raw;
    if (auto error = prepare(identity_id, identity, &send, &send_raw, &wait, &wait_raw)) return error;
    if constexpr (sizeof...(Out) == 1) {
      return detail::check(noxy_send_and_wait(handle_.get(), identity.c_str(), detail::payload_data(payload),
                                              payload.size(), send_raw.get(), wait_raw.get(), out...));
    } else {
      return detail::check(noxy_send_and_wait_async(handle_.get(), identity.c_str(),
                                                    detail::payload_data(payload), payload.size(),
                                                    send_raw.get(), wait_raw.get(), out...));
    }
  }
  template <typename... Out>
  std::optional<Error> send_decision_start(std::string_view identity_id, std::string_view payload,
                                           const SendOptions& send, Out... out) const {
    std::string identity;
    detail::SendOptionsPtr send_raw;
    if (auto error = prepare(identity_id, identity, &send, &send_raw, nullptr, nullptr)) return error;
    if constexpr (sizeof...(Out) == 1) {
      return detail::check(noxy_send_decision(handle_.get(), identity.c_str(), detail::payload_data(payload),
                                              payload.size(), send_raw.get(), out...));
    } else {
      return detail::check(noxy_send_decision_async(handle_.get(), identity.c_str(),
                                                    detail::payload_data(payload), payload.size(),
                                                    send_raw.get(), out...));
    }
  }
  template <typename... Out>
  std::optional<Error> wait_for_outcome_start(std::string_view decision_id, std::string_view identity_id,
                                              const WaitOptions& wait, Out... out) const {
    std::string decision, identity;
    detail::WaitOptionsPtr wait_raw;
    if (auto error = detail::c_string(decision_id, "decision_id", decision)) return error;
    if (auto error = prepare(identity_id, identity, nullptr, nullptr, &wait, &wait_raw)) return error;
    if constexpr (sizeof...(Out) == 1) {
      return detail::check(
          noxy_wait_for_outcome(handle_.get(), decision.c_str(), identity.c_str(), wait_raw.get(), out...));
    } else {
      return detail::check(noxy_wait_for_outcome_async(handle_.get(), decision.c_str(), identity.c_str(),
                                                       wait_raw.get(), out...));
    }
  }
  template <typename... Out>
  std::optional<Error> get_decision_outcome_start(std::string_view decision_id, std::string_view identity_id,
                                                  Out... out) const {
    std::string decision, identity;
    if (auto error = detail::c_string(decision_id, "decision_id", decision)) return error;
    if (auto error = detail::c_string(identity_id, "identity_id", identity)) return error;
    if constexpr (sizeof...(Out) == 1) {
      return detail::check(
          noxy_get_decision_outcome(handle_.get(), decision.c_str(), identity.c_str(), out...));
    } else {
      return detail::check(
          noxy_get_decision_outcome_async(handle_.get(), decision.c_str(), identity.c_str(), out...));
    }
  }
  std::optional<Error> get_quota_start(detail::callback_of<noxy_quota> callback, void* user_data,
                                       noxy_operation** operation) const {
    return detail::check(noxy_get_quota_async(handle_.get(), callback, user_data, operation));
  }
  template <typename... Out>
  std::optional<Error> get_identity_devices_start(std::string_view identity_id, Out... out) const {
    std::string identity;
    if (auto error = detail::c_string(identity_id, "identity_id", identity)) return error;
    if constexpr (sizeof...(Out) == 1) {
      return detail::check(noxy_get_identity_devices(handle_.get(), identity.c_str(), out...));
    } else {
      return detail::check(noxy_get_identity_devices_async(handle_.get(), identity.c_str(), out...));
    }
  }

  detail::Owned<noxy_client, noxy_free> handle_;
};

/// Routes the library's logs (of every client without a sink of its own) to `sink`, for
/// events up to `max_level`; an empty sink or LogLevel::off disables process-wide logging.
/// Replaces any earlier sink, which is destroyed after its last call. Not from inside a sink.
inline Result<void> set_log_sink(const LogSink& sink, LogLevel max_level) {
  if (!sink || max_level == LogLevel::off) {
    if (auto error = detail::check(noxy_set_log_callback(nullptr, nullptr, nullptr, NOXY_LOG_OFF)))
      return std::move(*error);
    return {};
  }
  auto* copy = new LogSink(sink);
  if (auto error = detail::check(noxy_set_log_callback(&detail::log_trampoline, copy, &detail::log_release,
                                                       static_cast<std::int32_t>(max_level)))) {
    delete copy;  // the library took nothing
    return std::move(*error);
  }
  return {};
}

}  // namespace noxy

#endif  // NOXY_HPP
