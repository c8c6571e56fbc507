package network.noxy

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import java.io.File

/**
 * Run by Failsafe against the packaged jar, without `jna.library.path`: libnoxy.so must come
 * out of the jar (`linux-x86-64/libnoxy.so`), and work.
 */
@Timeout(60)
class JarLoadingIT {
    @Test
    fun `libnoxy is loaded from inside the jar`() = runBlocking<Unit> {
        assertNull(System.getProperty("jna.library.path"))
        val resource = Noxy::class.java.classLoader.getResource("linux-x86-64/libnoxy.so")
        assertEquals("jar", resource?.protocol, "the library resource: $resource")
        val jar = Noxy::class.java.protectionDomain.codeSource.location.path
        assertTrue(jar.endsWith(".jar"), "the binding's classes come from $jar")
        assertTrue(resource.toString().contains(File(jar).name))

        assertEquals(Noxy.BINDING_VERSION, Noxy.version())
        // JNA extracted it to a temporary file (and removed that once loaded).
        val loaded = Noxy.libraryPath()
        assertTrue(!loaded.contains("target/release"), "extracted, not the build's copy: $loaded")

        NoxyClient(TestRelay.config()).use { client ->
            assertEquals(TestRelay.APP, client.getQuota().appName)
        }
    }
}
