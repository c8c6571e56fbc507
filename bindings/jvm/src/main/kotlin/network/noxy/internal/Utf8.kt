package network.noxy.internal

import com.sun.jna.Pointer
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException

/** Strings across the boundary: UTF-8 both ways, never through `jna.encoding`. */
internal object Utf8 {
    /**
     * [value] as a NUL-terminated UTF-8 C string. Refuses an embedded NUL (the library would
     * read only up to it) and an unpaired surrogate (it has no UTF-8 form), as
     * [NoxyErrorCode.INVALID_ARGUMENT] naming [what].
     */
    fun cString(value: String, what: String): ByteArray {
        val nul = value.indexOf('\u0000')
        if (nul >= 0) {
            throw NoxyException(NoxyErrorCode.INVALID_ARGUMENT, "$what: embedded NUL character at index $nul")
        }
        checkSurrogates(value, what, NoxyErrorCode.INVALID_ARGUMENT)
        val bytes = value.toByteArray(Charsets.UTF_8)
        return bytes.copyOf(bytes.size + 1)
    }

    /** A nullable [cString]. */
    fun cStringOrNull(value: String?, what: String): ByteArray? = value?.let { cString(it, what) }

    /**
     * The payload's exact bytes: the UTF-8 of [value] (not NUL-terminated: its length goes
     * along). An unpaired surrogate, which has no UTF-8 form, is
     * [NoxyErrorCode.INVALID_PAYLOAD], as the library reports invalid UTF-8.
     */
    fun payload(value: String): ByteArray {
        checkSurrogates(value, "payload_json", NoxyErrorCode.INVALID_PAYLOAD)
        return value.toByteArray(Charsets.UTF_8)
    }

    /** A borrowed C string, copied; null for NULL. */
    fun read(pointer: Pointer?): String? = pointer?.getString(0, "UTF-8")

    private fun checkSurrogates(value: String, what: String, code: NoxyErrorCode) {
        var i = 0
        val n = value.length
        while (i < n) {
            val c = value[i]
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(value[i + 1])) {
                    i += 2
                    continue
                }
                throw NoxyException(code, "$what: unpaired surrogate at index $i (not encodable as UTF-8)")
            }
            i++
        }
    }
}
