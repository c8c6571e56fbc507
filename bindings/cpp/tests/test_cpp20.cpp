// C++20: the std::stop_token overloads cancel through a std::stop_callback.
#include <stop_token>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace noxy_test;

static_assert(NOXY_HPP_HAS_STOP_TOKEN == 1, "C++20 with <stop_token> has the stop_token overloads");

TEST(StopToken, RequestStopCancels) {
  noxy::Client client = relay_client();
  std::stop_source stop;
  auto future = client.send_and_wait_async(kCarol, kPayload, {}, {}, stop.get_token());
  EXPECT_EQ(future.wait_for(200ms), std::future_status::timeout);  // carol never answers
  EXPECT_TRUE(stop.request_stop());
  EXPECT_EQ(get(future).code(), noxy::ErrorCode::cancelled);
}

TEST(StopToken, StoppedBeforeTheStart) {
  noxy::Client client = relay_client();
  std::stop_source stop;
  stop.request_stop();
  auto future = client.wait_for_outcome_async("00000000-0000-4000-8000-00000000c0de", kCarol, fast_wait(),
                                              stop.get_token());
  EXPECT_EQ(get(future).code(), noxy::ErrorCode::cancelled);
}

TEST(StopToken, StopAfterCompletionChangesNothing) {
  noxy::Client client = relay_client();
  std::stop_source stop;
  auto future = client.get_quota_async(stop.get_token());
  auto quota = get(future);
  ASSERT_TRUE(quota.ok()) << quota.error().message;
  stop.request_stop();  // the stop callback is gone or its cancel has no effect
  EXPECT_EQ(quota->app_name, "tests");
  ASSERT_TRUE(client.drain(kPatience).ok());
}

TEST(StopToken, EveryCallHasAStopTokenForm) {
  noxy::Client client = relay_client();
  std::stop_source never;
  auto sent_future = client.send_decision_async(kAlice, kPayload, {}, never.get_token());
  auto quota_future = client.get_quota_async(never.get_token());
  auto devices_future = client.get_identity_devices_async(kAlice, never.get_token());
  auto both_future = client.send_and_wait_async(kBob, kPayload, {}, fast_wait(), never.get_token());
  auto sent = get(sent_future);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_TRUE(get(quota_future).ok());
  EXPECT_EQ(get(devices_future)->size(), 1u);
  EXPECT_EQ(get(both_future)->outcome, noxy::Outcome::rejected);
  auto once_future =
      client.get_decision_outcome_async(*sent->accepted_decision_id, kAlice, never.get_token());
  auto final_future =
      client.wait_for_outcome_async(*sent->accepted_decision_id, kAlice, fast_wait(), never.get_token());
  EXPECT_TRUE(get(once_future).ok());
  EXPECT_EQ(get(final_future)->outcome, noxy::Outcome::approved);
  // Start errors go to the future, as for the other forms.
  auto refused = client.send_and_wait_async(std::string("a\0b", 3), kPayload, {}, {}, never.get_token());
  ASSERT_EQ(refused.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(refused.get().error().message, "identity_id: contains a NUL byte");
}

// Many operations stopped from other threads (std::jthread) while their completions run.
TEST(StopToken, ManyStoppedFromOtherThreads) {
  noxy::Client client = relay_client();
  constexpr int kCount = 100;
  std::vector<std::stop_source> stops(kCount);
  std::vector<std::future<noxy::Result<noxy::DecisionResult>>> futures;
  for (int i = 0; i < kCount; ++i)
    futures.push_back(client.send_and_wait_async(kCarol, kPayload, {}, {}, stops[i].get_token()));
  {
    std::jthread even([&] {
      for (int i = 0; i < kCount; i += 2) stops[i].request_stop();
    });
    std::jthread odd([&] {
      for (int i = 1; i < kCount; i += 2) stops[i].request_stop();
    });
  }
  for (auto& future : futures) EXPECT_EQ(get(future).code(), noxy::ErrorCode::cancelled);
}
