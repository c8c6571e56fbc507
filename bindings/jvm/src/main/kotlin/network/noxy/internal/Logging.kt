package network.noxy.internal

import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import com.sun.jna.Pointer
import network.noxy.LogLevel
import network.noxy.NoxyLogger
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicLong

/**
 * The loggers libnoxy may call: one static log callback and one static `free_user_data`
 * callback (never released), and a registry of loggers keyed by the id passed as `user_data`.
 * An entry is added before registration and removed by `free_user_data`, which libnoxy calls
 * once after the last log call that may use it.
 */
internal object Logging {
    private val loggers = ConcurrentHashMap<Long, NoxyLogger>()
    private val nextId = AtomicLong(1)

    val callback: LogCallback = LogCallback { level, message, userData ->
        try {
            val logger = loggers[Pointer.nativeValue(userData)]
            if (logger != null && message != null) {
                logger.log(LogLevel.fromValue(level) ?: LogLevel.TRACE, message.getString(0, "UTF-8"))
            }
        } catch (_: Throwable) {
            // A logger's exception is dropped: it must not unwind into native code, and there is
            // nowhere better to report a failure of the reporting itself.
        }
    }

    val release: FreeUserDataCallback = FreeUserDataCallback { userData ->
        try {
            loggers.remove(Pointer.nativeValue(userData))
        } catch (_: Throwable) {
            // Never into native code.
        }
    }

    init {
        // Log events come from the library's runtime threads too: keep them attached as
        // daemons rather than attaching and detaching around every event.
        val init = CallbackThreadInitializer(true, false, "noxy-native")
        Native.setCallbackThreadInitializer(callback, init)
        Native.setCallbackThreadInitializer(release, init)
    }

    /** How many loggers libnoxy has not released yet (tests). */
    val registered: Int get() = loggers.size

    /** Adds [logger]; returns its `user_data`. */
    fun register(logger: NoxyLogger): Pointer {
        val id = nextId.getAndIncrement()
        loggers[id] = logger
        return Pointer(id)
    }

    /** Removes a logger whose registration failed (libnoxy took nothing). */
    fun unregister(userData: Pointer) {
        loggers.remove(Pointer.nativeValue(userData))
    }
}
