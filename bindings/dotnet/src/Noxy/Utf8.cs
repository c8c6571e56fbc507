using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Noxy
{
    /// <summary>
    /// UTF-8 in both directions, done by the binding itself: strings go to C as NUL-terminated
    /// UTF-8 bytes it encoded, whatever the runtime's default string marshalling is.
    /// </summary>
    internal static class Utf8
    {
        // Throws on a lone surrogate instead of silently sending U+FFFD.
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>
        /// <paramref name="value"/> as UTF-8 followed by a NUL. The C library reads up to the
        /// first NUL, so a string with an embedded NUL is refused here instead of cut short.
        /// </summary>
        internal static byte[] Encode(string value, string paramName)
        {
            if (value == null)
            {
                throw new ArgumentNullException(paramName);
            }
            if (value.IndexOf('\0') >= 0)
            {
                throw new ArgumentException("The string contains a NUL character.", paramName);
            }
            try
            {
                int length = Strict.GetByteCount(value);
                var bytes = new byte[length + 1];
                Strict.GetBytes(value, 0, value.Length, bytes, 0);
                return bytes;
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException("The string is not valid UTF-16 (a lone surrogate).", paramName, e);
            }
        }

        /// <summary>A payload's exact bytes: UTF-8 of the string, no terminator, no check (the library validates).</summary>
        internal static byte[] Payload(string json, string paramName)
        {
            if (json == null)
            {
                throw new ArgumentNullException(paramName);
            }
            try
            {
                return Strict.GetBytes(json);
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException("The payload is not valid UTF-16 (a lone surrogate).", paramName, e);
            }
        }

        /// <summary>Copies a borrowed NUL-terminated UTF-8 string; null for NULL.</summary>
        internal static string Decode(IntPtr text)
        {
            if (text == IntPtr.Zero)
            {
                return null;
            }
            int length = 0;
            while (Marshal.ReadByte(text, length) != 0)
            {
                length++;
            }
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }
    }

    /// <summary>
    /// Marks the static methods that native code calls back. Unity's IL2CPP and other
    /// ahead-of-time compilers recognise this attribute by its name and generate the reverse
    /// P/Invoke stubs for the marked methods; other runtimes ignore it.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        internal MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        internal Type DelegateType { get; private set; }
    }
}
