// The blocking calls against the development relay: values copied out, errors mapped one to one.
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace noxy_test;

namespace {

void expect_outcome(std::string_view identity, noxy::Outcome expected) {
  noxy::Client client = relay_client();
  auto result = client.send_and_wait(identity, kPayload, {}, fast_wait());
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->outcome, expected);
  EXPECT_FALSE(result->pending);
  EXPECT_EQ(result->decision_id.size(), 36u);
  ASSERT_TRUE(result->plaintext_sha256.has_value());
  EXPECT_EQ(hex(*result->plaintext_sha256), kPayloadSha256);
  ASSERT_EQ(result->deliveries.size(), 1u);
  const noxy::Delivery& delivery = result->deliveries[0];
  EXPECT_EQ(delivery.status, noxy::DeliveryStatus::delivered);
  EXPECT_EQ(delivery.error_code, noxy::ErrorCode::ok);
  EXPECT_FALSE(delivery.error_message.has_value());
  EXPECT_EQ(delivery.decision_id, result->decision_id);
  EXPECT_FALSE(delivery.device_id.empty());
  EXPECT_EQ(delivery.request_id.size(), 36u);
}

}  // namespace

TEST(Calls, SendAndWaitApproved) { expect_outcome(kAlice, noxy::Outcome::approved); }

TEST(Calls, SendAndWaitRejected) { expect_outcome(kBob, noxy::Outcome::rejected); }

TEST(Calls, SendAndWaitExpired) {
  noxy::Client client = relay_client();
  noxy::SendOptions send;
  send.ttl = 1s;
  auto result = client.send_and_wait(kCarol, kPayload, send, fast_wait());
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->outcome, noxy::Outcome::expired);
}

TEST(Calls, EveryDeviceOfAnIdentity) {
  noxy::Client client = relay_client();
  auto result = client.send_and_wait(kTeam, kPayload, {}, fast_wait());
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->outcome, noxy::Outcome::approved);
  ASSERT_EQ(result->deliveries.size(), 3u);
  std::set<std::string> devices;
  for (const noxy::Delivery& delivery : result->deliveries) {
    EXPECT_EQ(delivery.status, noxy::DeliveryStatus::delivered);
    EXPECT_EQ(delivery.decision_id, result->decision_id);
    devices.insert(delivery.device_id);
  }
  EXPECT_EQ(devices.size(), 3u);
}

TEST(Calls, NoDevicesIsNoDecisionId) {
  noxy::Client client = relay_client();
  auto result = client.send_and_wait(kNobody, kPayload);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.code(), noxy::ErrorCode::no_decision_id);
  EXPECT_NE(result.error().message.find("no devices"), std::string::npos) << result.error().message;
}

TEST(Calls, BadTokenIsUnauthenticated) {
  noxy::Client client = relay_client("wrong-token");
  EXPECT_EQ(client.send_and_wait(kAlice, kPayload).code(), noxy::ErrorCode::unauthenticated);
  EXPECT_EQ(client.get_quota().code(), noxy::ErrorCode::unauthenticated);
}

TEST(Calls, UnreachableIsUnavailable) {
  noxy::Client client = unreachable_client();
  EXPECT_EQ(client.send_and_wait(kAlice, kPayload).code(), noxy::ErrorCode::unavailable);
}

TEST(Calls, SendThenGetThenWait) {
  noxy::Client client = relay_client();
  auto sent = client.send_decision(kAlice, kPayload);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  ASSERT_TRUE(sent->accepted_decision_id.has_value());
  EXPECT_EQ(*sent->accepted_decision_id, sent->decision_id);
  ASSERT_EQ(sent->deliveries.size(), 1u);
  EXPECT_EQ(hex(sent->plaintext_sha256), kPayloadSha256);

  auto once = client.get_decision_outcome(*sent->accepted_decision_id, kAlice);
  ASSERT_TRUE(once.ok()) << once.error().message;
  EXPECT_TRUE(once->outcome == noxy::Outcome::pending || once->outcome == noxy::Outcome::approved);
  EXPECT_EQ(once->pending, once->outcome == noxy::Outcome::pending);
  EXPECT_EQ(once->decision_id, *sent->accepted_decision_id);
  EXPECT_FALSE(once->plaintext_sha256.has_value());  // nothing was sent by this call
  EXPECT_TRUE(once->deliveries.empty());

  auto final_state = client.wait_for_outcome(*sent->accepted_decision_id, kAlice, fast_wait());
  ASSERT_TRUE(final_state.ok()) << final_state.error().message;
  EXPECT_EQ(final_state->outcome, noxy::Outcome::approved);

  EXPECT_EQ(client.get_decision_outcome("00000000-0000-4000-8000-000000000000", kAlice).code(),
            noxy::ErrorCode::not_found);
}

// An error after routing carries the per-device results.
TEST(Calls, WaitTimedOutCarriesTheDeliveries) {
  noxy::Client client = relay_client();
  auto result = client.send_and_wait(kCarol, kPayload, {}, fast_wait(300ms));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.code(), noxy::ErrorCode::wait_timed_out);
  ASSERT_EQ(result.error().deliveries.size(), 1u);
  EXPECT_EQ(result.error().deliveries[0].status, noxy::DeliveryStatus::delivered);
  EXPECT_TRUE(result.error().deliveries[0].decision_id.has_value());

  auto sent = client.send_decision(kCarol, kPayload);
  ASSERT_TRUE(sent.ok());
  auto waited = client.wait_for_outcome(*sent->accepted_decision_id, kCarol, fast_wait(300ms));
  EXPECT_EQ(waited.code(), noxy::ErrorCode::wait_timed_out);
  EXPECT_NE(waited.error().message.find("wait timed out"), std::string::npos) << waited.error().message;
}

// The payload is (data, size): a NUL inside the size is refused, not cut short; the bytes
// before it alone are a fine payload.
TEST(Calls, PayloadIsTheExactBytes) {
  noxy::Client client = relay_client();
  const std::string with_nul("{\"a\":1}\0{\"b\":2}", 15);
  auto refused = client.send_decision(kCarol, with_nul);
  EXPECT_EQ(refused.code(), noxy::ErrorCode::invalid_payload);
  auto prefix = client.send_decision(kCarol, std::string_view(with_nul.c_str()));
  EXPECT_TRUE(prefix.ok()) << prefix.error().message;
  auto duplicate = client.send_decision(kAlice, R"({"to":"0xabc","amount":"1","amount":"1000"})");
  EXPECT_EQ(duplicate.code(), noxy::ErrorCode::invalid_payload);
  EXPECT_NE(duplicate.error().message.find("duplicate key"), std::string::npos);
  EXPECT_EQ(client.send_decision(kAlice, "[1,2]").code(), noxy::ErrorCode::invalid_payload);
  EXPECT_EQ(client.send_decision(kAlice, std::string_view()).code(), noxy::ErrorCode::invalid_payload);
  // Another spelling of the same object is other bytes, with another digest.
  auto spaced = client.send_decision(kCarol, "{ \"title\" : \"Send 1 ETH\" }\n");
  ASSERT_TRUE(spaced.ok());
  EXPECT_EQ(hex(spaced->plaintext_sha256),
            "ee0eba2c1015bc5e1ab3089b3259c429157ab5b6c1d556984d1e92809edd7fbe");
}

TEST(Calls, IdempotencyKey) {
  noxy::Client client = relay_client();
  noxy::SendOptions send;
  send.idempotency_key = "cpp-test-" + std::to_string(::getpid()) + "-" +
                         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  auto a = client.send_decision(kCarol, kPayload, send);
  auto b = client.send_decision(kCarol, kPayload, send);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->decision_id, b->decision_id);
  EXPECT_EQ(a->deliveries[0].request_id, b->deliveries[0].request_id);
  auto other = client.send_decision(kCarol, R"({"title":"Send 1000 ETH"})", send);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->decision_id, a->decision_id);
}

TEST(Calls, QuotaAndDevices) {
  noxy::Client client = relay_client();
  auto quota = client.get_quota();
  ASSERT_TRUE(quota.ok()) << quota.error().message;
  EXPECT_EQ(quota->app_name, "tests");
  EXPECT_GT(quota->total, 0u);
  EXPECT_LE(quota->remaining, quota->total);
  EXPECT_EQ(quota->status, noxy::QuotaStatus::active);

  auto devices = client.get_identity_devices(kAlice);
  ASSERT_TRUE(devices.ok()) << devices.error().message;
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_FALSE((*devices)[0].device_id.empty());
  EXPECT_EQ((*devices)[0].public_key.size(), 32u);
  EXPECT_EQ((*devices)[0].pq_public_key.size(), 1184u);
  auto team = client.get_identity_devices(kTeam);
  ASSERT_TRUE(team.ok());
  EXPECT_EQ(team->size(), 3u);
  auto none = client.get_identity_devices(kNobody);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(Calls, ValueThrowsTheError) {
  noxy::Client client = relay_client();
  try {
    noxy::DecisionResult result =
        client.get_decision_outcome("00000000-0000-4000-8000-000000000000", kAlice).value();
    FAIL() << "no exception; outcome " << noxy::to_string(result.outcome);
  } catch (const noxy::Exception& e) {
    EXPECT_EQ(e.error().code, noxy::ErrorCode::not_found);
    EXPECT_EQ(std::string(e.what()).rfind("not_found: ", 0), 0u) << e.what();
  }
  EXPECT_EQ(client.get_quota().value().app_name, "tests");
}

// One client from many threads at once (its methods are const and the C client thread-safe).
TEST(Calls, ThreadsShareOneClient) {
  const noxy::Client client = relay_client();
  constexpr int kThreads = 8, kEach = 10;
  std::vector<int> approved(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&client, &approved, t] {
      for (int i = 0; i < kEach; ++i) {
        auto result = client.send_and_wait(kAlice, kPayload, {}, fast_wait());
        if (result && result->outcome == noxy::Outcome::approved) approved[t]++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(approved[t], kEach) << "thread " << t;
}
