// The async forms: futures, callables and Operation handles; cancel, close, drain, destruction.
#include <set>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace noxy_test;

namespace {

template <typename T>
struct Got {
  noxy::Result<T> result;
  std::string thread;  // where the callable ran
};

// A move-only callable that hands its result (and the thread it ran on) to a future.
template <typename T>
struct Catch {
  std::promise<Got<T>> promise;
  void operator()(noxy::Result<T> result) noexcept {
    promise.set_value(Got<T>{std::move(result), thread_name()});
  }
};

template <typename T>
std::pair<Catch<T>, std::future<Got<T>>> catcher() {
  Catch<T> c;
  std::future<Got<T>> got = c.promise.get_future();
  return {std::move(c), std::move(got)};
}

template <typename T>
Got<T> wait(std::future<Got<T>>& got) {
  if (got.wait_for(kPatience) != std::future_status::ready) {
    ADD_FAILURE() << "the callable did not run within the test's patience";
    return Got<T>{noxy::Error{noxy::ErrorCode::internal, "test: not called", {}}, ""};
  }
  return got.get();
}

}  // namespace

TEST(Async, EveryCallReturnsAFuture) {
  noxy::Client client = relay_client();
  auto sent_future = client.send_decision_async(kAlice, kPayload);
  auto quota_future = client.get_quota_async();
  auto devices_future = client.get_identity_devices_async(kAlice);
  auto rejected_future = client.send_and_wait_async(kBob, kPayload, {}, fast_wait());

  auto sent = get(sent_future);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  ASSERT_TRUE(sent->accepted_decision_id.has_value());
  EXPECT_EQ(hex(sent->plaintext_sha256), kPayloadSha256);
  auto quota = get(quota_future);
  ASSERT_TRUE(quota.ok()) << quota.error().message;
  EXPECT_EQ(quota->app_name, "tests");
  auto devices = get(devices_future);
  ASSERT_TRUE(devices.ok()) << devices.error().message;
  EXPECT_EQ(devices->size(), 1u);
  auto rejected = get(rejected_future);
  ASSERT_TRUE(rejected.ok()) << rejected.error().message;
  EXPECT_EQ(rejected->outcome, noxy::Outcome::rejected);

  const std::string& id = *sent->accepted_decision_id;
  auto once_future = client.get_decision_outcome_async(id, kAlice);
  auto final_future = client.wait_for_outcome_async(id, kAlice, fast_wait());
  auto once = get(once_future);
  ASSERT_TRUE(once.ok()) << once.error().message;
  EXPECT_EQ(once->decision_id, id);
  auto final_state = get(final_future);
  ASSERT_TRUE(final_state.ok()) << final_state.error().message;
  EXPECT_EQ(final_state->outcome, noxy::Outcome::approved);
}

TEST(Async, EveryCallTakesACallable) {
  noxy::Client client = relay_client();
  auto [sent_cb, sent_got] = catcher<noxy::SendResult>();
  auto [quota_cb, quota_got] = catcher<noxy::Quota>();
  auto [devices_cb, devices_got] = catcher<std::vector<noxy::Device>>();
  auto [both_cb, both_got] = catcher<noxy::DecisionResult>();
  auto sent_op = client.send_decision_async(kAlice, kPayload, {}, std::move(sent_cb));
  auto quota_op = client.get_quota_async(std::move(quota_cb));
  auto devices_op = client.get_identity_devices_async(kTeam, std::move(devices_cb));
  auto both_op = client.send_and_wait_async(kAlice, kPayload, {}, fast_wait(), std::move(both_cb));
  for (const auto* op : {&sent_op, &quota_op, &devices_op, &both_op}) {
    ASSERT_TRUE(op->ok()) << op->error().message;
    EXPECT_TRUE(static_cast<bool>(**op));
  }
  const std::string here = thread_name();
  Got<noxy::SendResult> sent = wait(sent_got);
  ASSERT_TRUE(sent.result.ok()) << sent.result.error().message;
  // Callables run on the client's completion thread.
  EXPECT_EQ(sent.thread, "noxy-callbacks");
  EXPECT_NE(sent.thread, here);
  Got<noxy::Quota> quota = wait(quota_got);
  EXPECT_TRUE(quota.result.ok());
  EXPECT_EQ(quota.thread, "noxy-callbacks");
  Got<std::vector<noxy::Device>> devices = wait(devices_got);
  ASSERT_TRUE(devices.result.ok());
  EXPECT_EQ(devices.result->size(), 3u);
  Got<noxy::DecisionResult> both = wait(both_got);
  ASSERT_TRUE(both.result.ok()) << both.result.error().message;
  EXPECT_EQ(both.result->outcome, noxy::Outcome::approved);
  EXPECT_EQ(both.thread, "noxy-callbacks");

  const std::string id = *sent.result->accepted_decision_id;
  auto [once_cb, once_got] = catcher<noxy::DecisionResult>();
  auto [final_cb, final_got] = catcher<noxy::DecisionResult>();
  auto once_op = client.get_decision_outcome_async(id, kAlice, std::move(once_cb));
  auto final_op = client.wait_for_outcome_async(id, kAlice, fast_wait(), std::move(final_cb));
  ASSERT_TRUE(once_op.ok() && final_op.ok());
  Got<noxy::DecisionResult> once = wait(once_got);
  ASSERT_TRUE(once.result.ok());
  EXPECT_EQ(once.result->decision_id, id);
  Got<noxy::DecisionResult> final_state = wait(final_got);
  ASSERT_TRUE(final_state.result.ok());
  EXPECT_EQ(final_state.result->outcome, noxy::Outcome::approved);
}

// The callable is called once, then destroyed on the completion thread; what it captured goes
// with it.
TEST(Async, CallableRunsOnceAndIsDestroyed) {
  noxy::Client client = relay_client();
  auto [alive, destroyed] = signal();
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto started = client.get_quota_async([alive = alive, calls](noxy::Result<noxy::Quota> quota) noexcept {
    if (quota.ok()) calls->fetch_add(1);
  });
  ASSERT_TRUE(started.ok()) << started.error().message;
  alive.reset();
  ASSERT_TRUE(ready(destroyed));
  EXPECT_EQ(destroyed.get(), "noxy-callbacks");
  ASSERT_TRUE(client.drain(kPatience).ok());
  EXPECT_EQ(calls->load(), 1);
  EXPECT_EQ(calls.use_count(), 1);
}

TEST(Async, MoveOnlyCallables) {
  noxy::Client client = relay_client();
  auto box = std::make_unique<int>(41);
  std::promise<int> promise;
  auto seen = promise.get_future();
  auto started = client.get_identity_devices_async(
      kAlice, [box = std::move(box), promise = std::move(promise)](
                  noxy::Result<std::vector<noxy::Device>> devices) mutable noexcept {
        promise.set_value(devices.ok() ? *box + static_cast<int>(devices->size()) : -1);
      });
  ASSERT_TRUE(started.ok());
  ASSERT_EQ(seen.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(seen.get(), 42);
}

TEST(Async, OperationCancels) {
  noxy::Client client = relay_client();
  auto [callable, got] = catcher<noxy::DecisionResult>();
  auto operation = client.send_and_wait_async(kCarol, kPayload, {}, {}, std::move(callable));
  ASSERT_TRUE(operation.ok()) << operation.error().message;
  EXPECT_EQ(got.wait_for(200ms), std::future_status::timeout);  // carol never answers
  ASSERT_TRUE(operation->cancel().ok());
  ASSERT_TRUE(operation->cancel().ok());  // idempotent
  Got<noxy::DecisionResult> cancelled = wait(got);
  EXPECT_EQ(cancelled.result.code(), noxy::ErrorCode::cancelled);
  EXPECT_TRUE(operation->cancel().ok());  // after completion: no effect, no error

  // A moved Operation still cancels; the moved-from one is empty.
  auto [second_cb, second_got] = catcher<noxy::DecisionResult>();
  auto started = client.wait_for_outcome_async("00000000-0000-4000-8000-00000000c0de", kCarol, fast_wait(),
                                               std::move(second_cb));
  ASSERT_TRUE(started.ok());
  noxy::Operation moved = std::move(*started);
  EXPECT_FALSE(static_cast<bool>(*started));  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.cancel().ok());
  Got<noxy::DecisionResult> second = wait(second_got);
  // Cancelled, or not found if the relay answered first.
  EXPECT_TRUE(second.result.code() == noxy::ErrorCode::cancelled ||
              second.result.code() == noxy::ErrorCode::not_found)
      << noxy::to_string(second.result.code());
}

// Releasing the handle does not cancel: a fire-and-forget operation runs to its end.
TEST(Async, DroppingTheOperationDoesNotCancel) {
  noxy::Client client = relay_client();
  auto [callable, got] = catcher<noxy::DecisionResult>();
  {
    auto operation = client.send_and_wait_async(kSteps, kPayload, {}, fast_wait(), std::move(callable));
    ASSERT_TRUE(operation.ok());
  }  // the handle is freed here; steps approves after 300 ms
  Got<noxy::DecisionResult> result = wait(got);
  ASSERT_TRUE(result.result.ok()) << result.result.error().message;
  EXPECT_EQ(result.result->outcome, noxy::Outcome::approved);
}

// A call the library refuses to start: the future holds the error at once; the callable form
// returns it, and the callable is destroyed without being called.
TEST(Async, StartErrors) {
  noxy::Client client = relay_client();
  auto future = client.send_and_wait_async("", kPayload);
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  auto refused = future.get();
  EXPECT_EQ(refused.code(), noxy::ErrorCode::invalid_argument);
  EXPECT_NE(refused.error().message.find("identity_id"), std::string::npos) << refused.error().message;

  auto payload_future = client.send_decision_async(kAlice, "not json");
  EXPECT_EQ(get(payload_future).code(), noxy::ErrorCode::invalid_payload);

  auto [alive, destroyed] = signal();
  bool called = false;
  auto started = client.wait_for_outcome_async(
      "", kAlice, {},
      [alive = alive, &called](noxy::Result<noxy::DecisionResult>) noexcept { called = true; });
  alive.reset();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.code(), noxy::ErrorCode::invalid_argument);
  ASSERT_EQ(destroyed.wait_for(0s), std::future_status::ready);
  EXPECT_FALSE(called);
}

TEST(Async, ThousandConcurrentFutures) {
  noxy::Client client = relay_client();
  constexpr int kCount = 1000;
  std::vector<std::future<noxy::Result<noxy::DecisionResult>>> futures;
  futures.reserve(kCount);
  const noxy::WaitOptions wait = fast_wait(60s);
  for (int i = 0; i < kCount; ++i) {
    futures.push_back(client.send_and_wait_async(i % 2 ? kAlice : kBob, kPayload, {}, wait));
  }
  std::set<std::string> ids;
  int approved = 0, rejected = 0;
  for (int i = 0; i < kCount; ++i) {
    auto result = get(futures[i], 120s);
    ASSERT_TRUE(result.ok()) << i << ": " << result.error().message;
    EXPECT_EQ(result->outcome, i % 2 ? noxy::Outcome::approved : noxy::Outcome::rejected) << i;
    (result->outcome == noxy::Outcome::approved ? approved : rejected)++;
    ids.insert(result->decision_id);
  }
  EXPECT_EQ(approved, kCount / 2);
  EXPECT_EQ(rejected, kCount / 2);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kCount));
}

TEST(Async, CloseAndDrain) {
  noxy::Client client = relay_client();
  auto pending = client.send_and_wait_async(kCarol, kPayload);
  auto busy = client.drain(0ms);
  EXPECT_EQ(busy.code(), noxy::ErrorCode::deadline_exceeded);
  EXPECT_NE(busy.error().message.find("1 operation"), std::string::npos) << busy.error().message;
  ASSERT_TRUE(client.close().ok());
  ASSERT_TRUE(client.close().ok());  // idempotent
  ASSERT_TRUE(client.drain(kPatience).ok());
  // After a successful drain every completion has run: the future is ready at once.
  ASSERT_EQ(pending.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(pending.get().code(), noxy::ErrorCode::cancelled);
  EXPECT_EQ(client.get_quota().code(), noxy::ErrorCode::cancelled);
  auto refused = client.get_quota_async();
  ASSERT_EQ(refused.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(refused.get().code(), noxy::ErrorCode::cancelled);
}

// Destroying the client (noxy_free, which never blocks) cancels what is in flight; every
// future still becomes ready, exactly once, after the destructor returned.
TEST(Async, DestroyingTheClientCancelsInFlight) {
  std::vector<std::future<noxy::Result<noxy::DecisionResult>>> futures;
  {
    noxy::Client client = relay_client();
    for (int i = 0; i < 10; ++i) futures.push_back(client.send_and_wait_async(kCarol, kPayload));
  }
  for (auto& future : futures) EXPECT_EQ(get(future).code(), noxy::ErrorCode::cancelled);
}

// A callable may own the client: destroying it there (noxy_free on the completion thread) is
// allowed, and the other operations in flight end cancelled.
TEST(Async, ClientDestroyedInItsOwnCallable) {
  struct Owner {
    noxy::Client client;
    std::promise<std::string> destroyed_on;
    ~Owner() { destroyed_on.set_value(thread_name()); }
  };
  auto owner = std::make_shared<Owner>();
  owner->client = relay_client();
  std::future<std::string> destroyed_on = owner->destroyed_on.get_future();
  std::vector<std::future<noxy::Result<noxy::DecisionResult>>> others;
  for (int i = 0; i < 3; ++i) others.push_back(owner->client.send_and_wait_async(kCarol, kPayload));
  auto operation = owner->client.send_and_wait_async(kCarol, kPayload, {}, {},
                                                     [owner](noxy::Result<noxy::DecisionResult>) noexcept {});
  ASSERT_TRUE(operation.ok());
  owner.reset();                          // the callable is the client's last owner now
  ASSERT_TRUE(operation->cancel().ok());  // its completion destroys the client
  ASSERT_TRUE(ready(destroyed_on));
  EXPECT_EQ(destroyed_on.get(), "noxy-callbacks");
  for (auto& future : others) EXPECT_EQ(get(future).code(), noxy::ErrorCode::cancelled);
}

// Callables may start new operations; blocking calls are refused there.
TEST(Async, CallablesMayStartButNotBlock) {
  noxy::Client client = relay_client();
  std::promise<noxy::ErrorCode> blocking_code;
  auto blocking_seen = blocking_code.get_future();
  auto [devices_cb, devices_got] = catcher<std::vector<noxy::Device>>();
  auto started = client.get_quota_async(
      [&client, &blocking_code, cb = std::move(devices_cb)](noxy::Result<noxy::Quota>) mutable noexcept {
        blocking_code.set_value(client.get_quota().code());
        (void)client.get_identity_devices_async(kAlice, std::move(cb));
      });
  ASSERT_TRUE(started.ok());
  ASSERT_EQ(blocking_seen.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(blocking_seen.get(), noxy::ErrorCode::invalid_argument);
  Got<std::vector<noxy::Device>> devices = wait(devices_got);
  ASSERT_TRUE(devices.result.ok()) << devices.result.error().message;
  EXPECT_EQ(devices.result->size(), 1u);
  ASSERT_TRUE(client.drain(kPatience).ok());
}
