package network.noxy

import java.util.concurrent.Executor
import java.util.logging.Level
import java.util.logging.Logger

/** Log levels, most severe first (as C `noxy_log_level`). */
public enum class LogLevel(public val value: Int) {
    /** No logging (as a maximum level). */
    OFF(0),

    /** Errors. */
    ERROR(1),

    /** Warnings. */
    WARN(2),

    /** Informational events (retries, transient failures while waiting). */
    INFO(3),

    /** Debugging detail. */
    DEBUG(4),

    /** Very verbose detail, including the HTTP/2 and TLS layers. */
    TRACE(5),
    ;

    public companion object {
        /** The level with C number [value], or null for a number this version does not know. */
        @JvmStatic
        public fun fromValue(value: Int): LogLevel? = entries.firstOrNull { it.value == value }
    }
}

/**
 * Receives libnoxy's log events. It is called on any thread — the library's runtime threads,
 * and host threads inside a call — and concurrently with itself: keep it short, thread-safe and
 * non-blocking, and call no [NoxyClient] method from it. Whatever it throws is caught and
 * dropped (it can never unwind into native code). The app token and payloads never appear in
 * the messages.
 */
public fun interface NoxyLogger {
    /** One event: its [level] and [message]. */
    public fun log(level: LogLevel, message: String)

    public companion object {
        /**
         * A logger that forwards to `java.util.logging` logger [name] (ERROR → SEVERE, WARN →
         * WARNING, INFO → INFO, DEBUG → FINE, TRACE → FINEST).
         */
        @JvmStatic
        @JvmOverloads
        public fun javaUtilLogging(name: String = "network.noxy"): NoxyLogger {
            val logger = Logger.getLogger(name)
            return NoxyLogger { level, message ->
                val julLevel = when (level) {
                    LogLevel.ERROR -> Level.SEVERE
                    LogLevel.WARN -> Level.WARNING
                    LogLevel.INFO -> Level.INFO
                    LogLevel.DEBUG -> Level.FINE
                    LogLevel.TRACE, LogLevel.OFF -> Level.FINEST
                }
                logger.log(julLevel, message)
            }
        }
    }
}

/** The pause between retries (C `noxy_config_set_retry_backoff`). */
public data class RetryBackoff(
    /** The pause before the second attempt, in milliseconds. */
    val initialMs: Long,
    /** The growth of the pause after each retry (at least 1). */
    val multiplier: Double,
    /** The longest pause, in milliseconds (not below [initialMs]). */
    val maxMs: Long,
    /** The fraction in [0, 1] of each pause that is randomised away. */
    val jitter: Double,
)

/**
 * A client configuration: the relay [endpoint] and [appToken], everything else optional (null
 * keeps the library's default: decision TTL 600 s, connect timeout 10 s, request timeout 30 s,
 * retries of transient failures for up to 30 s, at most 100 RPCs in flight, 2 worker threads of
 * the client's own, the public web PKI roots). Every value is checked by [NoxyClient]'s
 * constructor, which names the first invalid one.
 *
 * Kotlin: `NoxyConfig(endpoint, token, caPemFile = path)` or `.copy(...)`; Java:
 * `new NoxyConfig(endpoint, token).withCaPemFile(path)`.
 */
public data class NoxyConfig(
    /** The relay: `https://relay.noxy.network`, `host:port` (always TLS; port 443 when none is given). */
    val endpoint: String,
    /** The app's bearer token (visible ASCII); never logged, and left out of [toString]. */
    val appToken: String,
    /** Trust only these root certificate(s), PEM text (a private or development relay). */
    val caPem: String? = null,
    /** Like [caPem], read from this file when the client is created. Set at most one of the two. */
    val caPemFile: String? = null,
    /** How long the relay keeps a decision open before it is EXPIRED, in seconds (at least 1). */
    val decisionTtlSeconds: Int? = null,
    /** The time allowed to connect (DNS, TCP, TLS), in milliseconds. */
    val connectTimeoutMs: Long? = null,
    /** The deadline of every single RPC attempt, in milliseconds. */
    val requestTimeoutMs: Long? = null,
    /** The attempts per call for transient failures, the first included: 1 disables retries, 0 removes the cap. */
    val maxAttempts: Int? = null,
    /** The pause between retries. */
    val retryBackoff: RetryBackoff? = null,
    /** How long transient failures are retried, in milliseconds (0 disables retries). */
    val retryBudgetMs: Long? = null,
    /** Runtime worker threads of the client (1 to 64). */
    val workerThreads: Int? = null,
    /** RPCs kept in flight on the connection at once (1 to 10 000); further calls wait their turn. */
    val maxConcurrentRequests: Int? = null,
    /** Share one process-wide runtime and completion thread with other clients that set it. */
    val sharedRuntime: Boolean = false,
    /** The `user-agent` sent with every call (visible ASCII). */
    val userAgent: String? = null,
    /**
     * This client's own logger (instead of the process-wide one, [Noxy.setLogger]); kept
     * reachable until the library has released it, after the client is closed.
     */
    val logger: NoxyLogger? = null,
    /** The most verbose level [logger] receives. */
    val logLevel: LogLevel = LogLevel.INFO,
    /**
     * Where futures returned by the `...Async` methods are completed, and where coroutines whose
     * dispatcher would resume them in place (`Dispatchers.Unconfined`) are resumed, so that no
     * caller code ever runs on libnoxy's completion thread. Null: `ForkJoinPool.commonPool()`.
     */
    val callbackExecutor: Executor? = null,
) {
    /** A configuration with the library's defaults for everything but the relay and the token (Java). */
    public constructor(endpoint: String, appToken: String) : this(endpoint, appToken, caPem = null)

    /** A copy with [caPem] set. */
    public fun withCaPem(caPem: String?): NoxyConfig = copy(caPem = caPem)

    /** A copy with [caPemFile] set. */
    public fun withCaPemFile(caPemFile: String?): NoxyConfig = copy(caPemFile = caPemFile)

    /** A copy with [decisionTtlSeconds] set. */
    public fun withDecisionTtlSeconds(seconds: Int?): NoxyConfig = copy(decisionTtlSeconds = seconds)

    /** A copy with [connectTimeoutMs] set. */
    public fun withConnectTimeoutMs(timeoutMs: Long?): NoxyConfig = copy(connectTimeoutMs = timeoutMs)

    /** A copy with [requestTimeoutMs] set. */
    public fun withRequestTimeoutMs(timeoutMs: Long?): NoxyConfig = copy(requestTimeoutMs = timeoutMs)

    /** A copy with [maxAttempts] set. */
    public fun withMaxAttempts(maxAttempts: Int?): NoxyConfig = copy(maxAttempts = maxAttempts)

    /** A copy with [retryBackoff] set. */
    public fun withRetryBackoff(retryBackoff: RetryBackoff?): NoxyConfig = copy(retryBackoff = retryBackoff)

    /** A copy with [retryBudgetMs] set. */
    public fun withRetryBudgetMs(budgetMs: Long?): NoxyConfig = copy(retryBudgetMs = budgetMs)

    /** A copy with [workerThreads] set. */
    public fun withWorkerThreads(workerThreads: Int?): NoxyConfig = copy(workerThreads = workerThreads)

    /** A copy with [maxConcurrentRequests] set. */
    public fun withMaxConcurrentRequests(maxRequests: Int?): NoxyConfig = copy(maxConcurrentRequests = maxRequests)

    /** A copy with [sharedRuntime] set. */
    public fun withSharedRuntime(sharedRuntime: Boolean): NoxyConfig = copy(sharedRuntime = sharedRuntime)

    /** A copy with [userAgent] set. */
    public fun withUserAgent(userAgent: String?): NoxyConfig = copy(userAgent = userAgent)

    /** A copy with [logger] and [logLevel] set. */
    @JvmOverloads
    public fun withLogger(logger: NoxyLogger?, logLevel: LogLevel = LogLevel.INFO): NoxyConfig =
        copy(logger = logger, logLevel = logLevel)

    /** A copy with [callbackExecutor] set. */
    public fun withCallbackExecutor(executor: Executor?): NoxyConfig = copy(callbackExecutor = executor)

    /** The configuration without the app token. */
    override fun toString(): String =
        "NoxyConfig(endpoint=$endpoint, appToken=<redacted>, caPem=${if (caPem == null) null else "<${caPem.length} chars>"}, " +
            "caPemFile=$caPemFile, decisionTtlSeconds=$decisionTtlSeconds, connectTimeoutMs=$connectTimeoutMs, " +
            "requestTimeoutMs=$requestTimeoutMs, maxAttempts=$maxAttempts, retryBackoff=$retryBackoff, " +
            "retryBudgetMs=$retryBudgetMs, workerThreads=$workerThreads, maxConcurrentRequests=$maxConcurrentRequests, " +
            "sharedRuntime=$sharedRuntime, userAgent=$userAgent, logger=$logger, logLevel=$logLevel, " +
            "callbackExecutor=$callbackExecutor)"
}
