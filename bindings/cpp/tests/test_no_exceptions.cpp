// Built with -fno-exceptions: results are used without exceptions, and value() of an error
// aborts with the error on stderr.
#include "common.hpp"

using namespace noxy_test;

static_assert(NOXY_HPP_EXCEPTIONS == 0, "this file is compiled with -fno-exceptions");

TEST(NoExceptions, ResultsAreValues) {
  noxy::Client client = relay_client();
  noxy::Result<noxy::DecisionResult> result = client.send_and_wait(kAlice, kPayload, {}, fast_wait());
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result.value().outcome, noxy::Outcome::approved);
  auto missing = client.get_decision_outcome("00000000-0000-4000-8000-000000000000", kAlice);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.code(), noxy::ErrorCode::not_found);
}

TEST(NoExceptions, AsyncForms) {
  noxy::Client client = relay_client();
  auto future = client.get_quota_async();
  auto quota = get(future);
  ASSERT_TRUE(quota.ok()) << quota.error().message;
  std::promise<noxy::ErrorCode> promise;
  auto code = promise.get_future();
  auto operation = client.send_and_wait_async(
      kCarol, kPayload, {}, {},
      [&promise](noxy::Result<noxy::DecisionResult> r) noexcept { promise.set_value(r.code()); });
  ASSERT_TRUE(operation.ok());
  ASSERT_TRUE(operation->cancel().ok());
  ASSERT_EQ(code.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(code.get(), noxy::ErrorCode::cancelled);
}

TEST(NoExceptionsDeathTest, ValueOfAnErrorAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  noxy::Result<int> failed(
      noxy::Error{noxy::ErrorCode::invalid_argument, "identity_id: contains a NUL byte", {}});
  EXPECT_DEATH((void)failed.value(),
               "noxy: value\\(\\) of a failed Result: invalid_argument: identity_id: contains a NUL byte");
  noxy::Result<void> closed(noxy::Error{noxy::ErrorCode::cancelled, "client closed", {}});
  EXPECT_DEATH(closed.value(), "cancelled: client closed");
}
