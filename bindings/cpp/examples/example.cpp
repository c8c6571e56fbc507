// libnoxy from C++: one decision sent and waited on (errors as values), three in flight at once
// (futures) and one cancelled (a callable and its Operation), the quota (value() throws), then
// an orderly shutdown.
//
//   NOXY_ENDPOINT=https://127.0.0.1:50051 NOXY_APP_TOKEN=dev-token
//   NOXY_CA_PEM_PATH=.noxy-devrelay/ca.pem NOXY_IDENTITY=demo-user ./example
// (the environment of `cargo run -p noxy-devrelay`; these are the defaults but for the CA).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <noxy.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;

static std::string env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

int main() {
  noxy::Config config;
  config.endpoint = env("NOXY_ENDPOINT", "127.0.0.1:50051");
  config.app_token = env("NOXY_APP_TOKEN", "dev-token");
  if (const char* ca = std::getenv("NOXY_CA_PEM_PATH")) config.ca_pem_file = ca;
  config.decision_ttl = 120s;
  // The library's warnings and errors, from any of its threads (a sink must be noexcept).
  config.log = [](noxy::LogLevel, std::string_view message) noexcept {
    std::fprintf(stderr, "noxy: %.*s\n", static_cast<int>(message.size()), message.data());
  };
  config.log_level = noxy::LogLevel::warn;

  noxy::Result<noxy::Client> created = noxy::Client::create(config);
  if (!created) {
    std::cerr << "configuration: " << created.error().message << "\n";
    return 2;
  }
  noxy::Client client = std::move(created).value();
  const std::string identity = env("NOXY_IDENTITY", "demo-user");
  noxy::WaitOptions wait;
  wait.initial_interval = 200ms;
  wait.max_wait = 3min;

  // 1. Blocking; the result holds the value or the error.
  noxy::Result<noxy::DecisionResult> result = client.send_and_wait(
      identity, R"({"kind":"tool_call","title":"Run database migration","args":{"command":"migrate up"}})",
      {}, wait);
  if (!result) {
    const noxy::Error& error = result.error();
    switch (error.code) {
      case noxy::ErrorCode::wait_timed_out:
        std::cerr << "nobody answered in time\n";
        break;
      case noxy::ErrorCode::no_decision_id:
        std::cerr << "no device accepted the decision (" << error.deliveries.size() << " deliveries)\n";
        break;
      default:
        std::cerr << noxy::to_string(error.code) << ": " << error.message << "\n";
    }
    return 1;
  }
  std::cout << "decision " << result->decision_id << ": " << noxy::to_string(result->outcome) << "\n";
  for (const noxy::Delivery& delivery : result->deliveries) {
    std::cout << "  device " << delivery.device_id << ": " << noxy::to_string(delivery.status) << "\n";
  }

  // 2. Async: three decisions in flight (futures), and one whose callable runs on the
  // library's completion thread and whose Operation cancels it.
  std::vector<std::future<noxy::Result<noxy::DecisionResult>>> steps;
  for (int step = 1; step <= 3; ++step) {
    const std::string payload =
        R"({"kind":"tool_call","title":"Rollout step )" + std::to_string(step) + R"("})";
    steps.push_back(client.send_and_wait_async(identity, payload, {}, wait));
  }
  std::promise<noxy::ErrorCode> rollback_done;
  std::future<noxy::ErrorCode> rollback_code = rollback_done.get_future();
  noxy::Result<noxy::Operation> rollback =
      client.send_and_wait_async(identity, R"({"kind":"tool_call","title":"Roll back"})", {}, wait,
                                 [&rollback_done](noxy::Result<noxy::DecisionResult> done) noexcept {
                                   rollback_done.set_value(done.code());
                                 });
  if (rollback) (void)rollback->cancel();
  for (auto& step : steps) {
    noxy::Result<noxy::DecisionResult> done = step.get();
    std::cout << "step: " << (done ? noxy::to_string(done->outcome) : noxy::to_string(done.code())) << "\n";
  }
  if (rollback) std::cout << "roll back: " << noxy::to_string(rollback_code.get()) << "\n";

  // 3. Or exceptions: value() throws noxy::Exception on an error.
  try {
    noxy::Quota quota = client.get_quota().value();
    std::cout << "quota of " << quota.app_name << ": " << quota.remaining << " of " << quota.total
              << " left\n";
  } catch (const noxy::Exception& e) {
    std::cerr << "quota: " << e.what() << "\n";
  }

  // 4. Orderly shutdown: after drain() no callable runs any more; ~Client frees the client.
  (void)client.close();
  (void)client.drain(10s);
  return result->outcome == noxy::Outcome::approved ? 0 : 3;
}
