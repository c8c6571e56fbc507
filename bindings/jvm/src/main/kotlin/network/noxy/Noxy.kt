package network.noxy

import network.noxy.internal.Convert
import network.noxy.internal.Logging
import network.noxy.internal.NoxyNative
import network.noxy.internal.Utf8

/** Process-wide functions of libnoxy. */
public object Noxy {
    /** The version of libnoxy this binding was written against; the library's must have the same major.minor. */
    public const val BINDING_VERSION: String = "0.1.0"

    /** The loaded library's version, `"MAJOR.MINOR.PATCH"`. Loading the library checks it. */
    @JvmStatic
    public fun version(): String = Utf8.read(NoxyNative.noxy_version()) ?: ""

    /** The path libnoxy was loaded from (from `jna.library.path`, the system, or extracted from the jar). */
    @JvmStatic
    public fun libraryPath(): String = NoxyNative.library.file?.path ?: NoxyNative.library.name

    /**
     * Routes the logs of every client without a logger of its own ([NoxyConfig.logger]) to
     * [logger], for events up to [maxLevel]; null or [LogLevel.OFF] turns process-wide logging
     * off (the default). Replaces the previous logger, which libnoxy releases after its last
     * call. The rules of [NoxyLogger] apply.
     */
    @JvmStatic
    @JvmOverloads
    public fun setLogger(logger: NoxyLogger?, maxLevel: LogLevel = LogLevel.INFO) {
        if (logger == null || maxLevel == LogLevel.OFF) {
            Convert.check(NoxyNative.noxy_set_log_callback(null, null, null, LogLevel.OFF.value))
            return
        }
        val userData = Logging.register(logger)
        val error = NoxyNative.noxy_set_log_callback(Logging.callback, userData, Logging.release, maxLevel.value)
        if (error != null) {
            Logging.unregister(userData)
            Convert.check(error)
        }
    }
}
