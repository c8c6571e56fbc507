// Logging through callable sinks: per client and process-wide; never the token or a payload.
#include <mutex>
#include <vector>

#include "common.hpp"

using namespace noxy_test;

namespace {

// Collects messages from any thread.
struct Messages {
  std::mutex mutex;
  std::vector<std::pair<noxy::LogLevel, std::string>> seen;

  void add(noxy::LogLevel level, std::string_view message) {
    std::lock_guard<std::mutex> lock(mutex);
    seen.emplace_back(level, std::string(message));
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return seen.size();
  }
  // Messages containing `needle`.
  std::size_t with(std::string_view needle) {
    std::lock_guard<std::mutex> lock(mutex);
    std::size_t n = 0;
    for (const auto& entry : seen) n += entry.second.find(needle) != std::string::npos;
    return n;
  }
  bool above(noxy::LogLevel max) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& entry : seen)
      if (static_cast<int>(entry.first) > static_cast<int>(max)) return true;
    return false;
  }
};

noxy::LogSink sink_into(const std::shared_ptr<Messages>& messages, std::shared_ptr<Signal> alive = nullptr) {
  return [messages, alive](noxy::LogLevel level, std::string_view message) noexcept {
    try {
      messages->add(level, message);
    } catch (...) {  // out of memory: drop the message, never unwind into the library
    }
  };
}

}  // namespace

TEST(Logging, PerClientSinkWithoutSecrets) {
  auto messages = std::make_shared<Messages>();
  auto [alive, released] = signal();
  noxy::Config config = relay_config();
  config.log = sink_into(messages, alive);
  config.log_level = noxy::LogLevel::debug;
  alive.reset();
  {
    noxy::Client client = noxy::Client::create(config).value();
    config.log = {};
    auto result = client.send_and_wait(kAlice, kPayload, {}, fast_wait());
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_GT(messages->count(), 0u);
    EXPECT_EQ(messages->with(token()), 0u);
    EXPECT_EQ(messages->with("Deploy to prod"), 0u);
    EXPECT_FALSE(messages->above(noxy::LogLevel::debug));
    EXPECT_EQ(released.wait_for(0s), std::future_status::timeout);  // the client still logs
  }
  // After the client is gone the library releases the sink (after its last call).
  EXPECT_TRUE(ready(released));
}

TEST(Logging, ProcessWideSink) {
  auto global = std::make_shared<Messages>();
  auto own = std::make_shared<Messages>();
  auto [alive, released] = signal();
  ASSERT_TRUE(noxy::set_log_sink(sink_into(global, alive), noxy::LogLevel::debug).ok());
  alive.reset();

  noxy::Client plain = relay_client();
  noxy::Config config = relay_config();
  config.log = sink_into(own);
  config.log_level = noxy::LogLevel::debug;
  noxy::Client separate = noxy::Client::create(config).value();

  const std::size_t own_before = own->count();
  ASSERT_TRUE(plain.get_quota().ok());
  EXPECT_GT(global->count(), 0u);
  EXPECT_EQ(own->count(), own_before);  // a client with a sink of its own is not in the global log
  const std::size_t global_before = global->count();
  ASSERT_TRUE(separate.get_quota().ok());
  EXPECT_GT(own->count(), own_before);
  EXPECT_EQ(global->count(), global_before);

  // Disabling releases the process-wide sink.
  ASSERT_TRUE(noxy::set_log_sink({}, noxy::LogLevel::off).ok());
  EXPECT_TRUE(ready(released));
  const std::size_t after = global->count();
  ASSERT_TRUE(plain.get_quota().ok());
  EXPECT_EQ(global->count(), after);
}

// A level the library refuses: it takes nothing, so the binding releases its copy at once.
TEST(Logging, RefusedSinkIsReleased) {
  auto messages = std::make_shared<Messages>();
  auto [alive, released] = signal();
  noxy::LogSink sink = sink_into(messages, alive);
  alive.reset();
  auto refused = noxy::set_log_sink(sink, static_cast<noxy::LogLevel>(6));
  EXPECT_EQ(refused.code(), noxy::ErrorCode::invalid_argument);
  noxy::Config config = relay_config();
  config.log = sink;
  config.log_level = static_cast<noxy::LogLevel>(-1);
  auto created = noxy::Client::create(config);
  EXPECT_EQ(created.code(), noxy::ErrorCode::invalid_argument);
  config.log = {};
  sink = {};
  // Only the binding's copies held it: it is gone on this thread, now.
  ASSERT_EQ(released.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(released.get(), thread_name());
}
