package network.noxy.internal

/**
 * Frees a forgotten client once it is unreachable: `java.lang.ref.Cleaner` where the platform
 * has it (every JVM from 9, Android from API 33), else JNA's own cleaner thread, which does the
 * same with a phantom reference queue. Each class is loaded only when chosen.
 */
internal interface Cleanable {
    /** Runs the action now unless it ran; unregisters it. */
    fun clean()
}

internal object Cleaners {
    private val register: (Any, Runnable) -> Cleanable = try {
        Class.forName("java.lang.ref.Cleaner")
        JavaCleaner::register
    } catch (_: ClassNotFoundException) {
        JnaCleaner::register
    }

    /** [action] must not reach [owner], or [owner] never becomes unreachable. */
    fun register(owner: Any, action: Runnable): Cleanable = register.invoke(owner, action)
}

private object JavaCleaner {
    private val cleaner = java.lang.ref.Cleaner.create()

    fun register(owner: Any, action: Runnable): Cleanable {
        val cleanable = cleaner.register(owner, action)
        return object : Cleanable {
            override fun clean() = cleanable.clean()
        }
    }
}

private object JnaCleaner {
    fun register(owner: Any, action: Runnable): Cleanable {
        val cleanable = com.sun.jna.internal.Cleaner.getCleaner().register(owner, action)
        return object : Cleanable {
            override fun clean() = cleanable.clean()
        }
    }
}
