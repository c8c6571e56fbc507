package network.noxy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import network.noxy.internal.Operations;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The blocking and CompletableFuture API, as Java code uses it. */
@Timeout(60)
class JavaApiTest {
    private static NoxyClient client;
    private static final WaitOptions FAST = new WaitOptions().withInitialIntervalMs(50L).withMaxWaitMs(20_000L);

    @BeforeAll
    static void open() {
        NoxyConfig config = new NoxyConfig(TestRelay.INSTANCE.getEndpoint(), TestRelay.INSTANCE.getToken())
                .withCaPemFile(TestRelay.INSTANCE.getCaPath())
                .withDecisionTtlSeconds(120);
        client = new NoxyClient(config);
    }

    @AfterAll
    static void close() {
        client.close();
    }

    private static String payload(String title) {
        return "{\"kind\":\"tool_call\",\"title\":\"" + title + "\"}";
    }

    @Test
    void blockingApprove() throws Exception {
        String text = payload("java blocking");
        DecisionResult result = client.sendDecisionAndWaitForOutcomeBlocking("alice", text, null, FAST);
        assertEquals(DecisionOutcome.APPROVED, result.getOutcome());
        assertArrayEquals(
                MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8)),
                result.getPlaintextSha256());
        assertEquals(1, result.getDeliveries().size());
    }

    @Test
    void blockingVerbs() {
        SendResult sent = client.sendDecisionBlocking("slow", payload("java send"));
        String id = sent.getAcceptedDecisionId();
        assertEquals(sent.getDecisionId(), id);
        assertTrue(client.getDecisionOutcomeBlocking(id, "slow").isPending());
        assertEquals(DecisionOutcome.APPROVED, client.waitForDecisionOutcomeBlocking(id, "slow", FAST).getOutcome());
        Quota quota = client.getQuotaBlocking();
        assertEquals(QuotaStatus.ACTIVE, quota.getStatus());
        List<Device> devices = client.getIdentityDevicesBlocking("team");
        assertEquals(3, devices.size());
    }

    @Test
    void blockingErrorsAreNoxyExceptions() {
        NoxyException e = assertThrows(NoxyException.class,
                () -> client.sendDecisionBlocking("alice", "{\"a\":1,\"a\":2}"));
        assertEquals(NoxyErrorCode.INVALID_PAYLOAD, e.getCode());
        assertEquals(2, e.getCode().getValue());
        assertEquals(NoxyErrorCode.WAIT_TIMED_OUT, NoxyErrorCode.fromValue(9));
        // An error reported by the callback carries the caller's stack, not the completion thread's.
        NoxyException notFound = assertThrows(NoxyException.class,
                () -> client.getDecisionOutcomeBlocking("00000000-0000-4000-8000-000000000000", "alice"));
        assertEquals(NoxyErrorCode.NOT_FOUND, notFound.getCode());
        assertTrue(java.util.Arrays.stream(notFound.getStackTrace())
                .anyMatch(f -> f.getMethodName().equals("lambda$blockingErrorsAreNoxyExceptions$1")
                        || f.getClassName().equals(JavaApiTest.class.getName())),
                java.util.Arrays.toString(notFound.getStackTrace()));
    }

    @Test
    void futureReject() throws Exception {
        CompletableFuture<DecisionResult> future =
                client.sendDecisionAndWaitForOutcomeAsync("bob", payload("java future"), null, FAST);
        assertEquals(DecisionOutcome.REJECTED, future.get(30, TimeUnit.SECONDS).getOutcome());
    }

    @Test
    void dependentStagesNeverRunOnTheCompletionThread() throws Exception {
        // "slow" answers after 300 ms: the stage below is registered before the future completes.
        CompletableFuture<DecisionResult> future =
                client.sendDecisionAndWaitForOutcomeAsync("slow", payload("java stage"), null, FAST);
        AtomicReference<String> stageThread = new AtomicReference<>();
        CompletableFuture<DecisionOutcome> outcome = future.thenApply(r -> {
            stageThread.set(Thread.currentThread().getName());
            return r.getOutcome();
        });
        assertTrue(!future.isDone(), "the stage was registered in time");
        assertEquals(DecisionOutcome.APPROVED, outcome.get(30, TimeUnit.SECONDS));
        assertTrue(!stageThread.get().startsWith("noxy-completion"), stageThread.get());
    }

    @Test
    void futureErrorIsTheCause() {
        NoxyConfig wrong = new NoxyConfig(TestRelay.INSTANCE.getEndpoint(), "wrong-token")
                .withCaPemFile(TestRelay.INSTANCE.getCaPath());
        try (NoxyClient other = new NoxyClient(wrong)) {
            CompletableFuture<Quota> future = other.getQuotaAsync();
            ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(30, TimeUnit.SECONDS));
            NoxyException cause = assertInstanceOf(NoxyException.class, e.getCause());
            assertEquals(NoxyErrorCode.UNAUTHENTICATED, cause.getCode());
        }
    }

    @Test
    void futureArgumentErrorsFailTheFuture() {
        CompletableFuture<SendResult> future = client.sendDecisionAsync("ali\u0000ce", payload("nul"));
        assertTrue(future.isCompletedExceptionally());
        ExecutionException e = assertThrows(ExecutionException.class, future::get);
        assertEquals(NoxyErrorCode.INVALID_ARGUMENT, ((NoxyException) e.getCause()).getCode());
    }

    @Test
    void cancellingTheFutureCancelsTheNativeOperation() throws Exception {
        CompletableFuture<DecisionResult> future =
                client.sendDecisionAndWaitForOutcomeAsync("carol", payload("java cancel"));
        SupportKt.awaitCondition("in flight", 10_000, () -> Operations.INSTANCE.getInFlight() == 1);
        assertTrue(future.cancel(true));
        assertThrows(CancellationException.class, future::get);
        SupportKt.awaitCondition("the native callback", 5_000, () -> Operations.INSTANCE.getInFlight() == 0);
    }

    @Test
    void interruptingABlockingCallCancelsIt() throws Exception {
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        AtomicReference<Boolean> stillInterrupted = new AtomicReference<>();
        Thread caller = new Thread(() -> {
            try {
                client.sendDecisionAndWaitForOutcomeBlocking("carol", payload("java interrupt"));
            } catch (Throwable t) {
                thrown.set(t);
            }
            stillInterrupted.set(Thread.currentThread().isInterrupted());
        });
        caller.start();
        SupportKt.awaitCondition("in flight", 10_000, () -> Operations.INSTANCE.getInFlight() == 1);
        caller.interrupt();
        caller.join(10_000);
        NoxyException e = assertInstanceOf(NoxyException.class, thrown.get());
        assertEquals(NoxyErrorCode.CANCELLED, e.getCode());
        assertEquals(Boolean.TRUE, stillInterrupted.get());
        assertEquals(0, Operations.INSTANCE.getInFlight());
    }

    @Test
    void versionIsStatic() {
        assertEquals(Noxy.BINDING_VERSION, Noxy.version());
    }
}
