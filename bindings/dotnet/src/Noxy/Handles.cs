// One SafeHandle subclass per object the library owns. Each ReleaseHandle calls that object's
// own C `_free` (never free()), exactly once, also from the finalizer thread when an object was
// not disposed. While a P/Invoke receives a SafeHandle, the runtime holds a reference on it, so
// the object cannot be freed by another thread (or the finalizer) in the middle of that call:
// that is the C rule "no other thread inside a call when noxy_free runs".
//
// The parameterless constructors are for the P/Invoke marshaller (returned objects and out
// parameters); the IntPtr constructors take ownership of a pointer a completion callback
// received.
using System;
using Microsoft.Win32.SafeHandles;

namespace Noxy
{
    /// <summary>noxy_client, freed by noxy_free (which never blocks, so it is safe in the finalizer).</summary>
    internal sealed class ClientHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        private long _liveId;

        public ClientHandle() : base(true) { }

        /// <summary>Lists the client among those shut down at exit (LiveClients).</summary>
        internal void Track()
        {
            _liveId = LiveClients.Add(this);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_free(handle);
            if (_liveId != 0)
            {
                LiveClients.Remove(_liveId);
            }
            return true;
        }
    }

    /// <summary>noxy_config, freed by noxy_config_free.</summary>
    internal sealed class ConfigHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public ConfigHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            Native.noxy_config_free(handle);
            return true;
        }
    }

    /// <summary>noxy_wait_options, freed by noxy_wait_options_free.</summary>
    internal sealed class WaitOptionsHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public WaitOptionsHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            Native.noxy_wait_options_free(handle);
            return true;
        }
    }

    /// <summary>noxy_send_options, freed by noxy_send_options_free.</summary>
    internal sealed class SendOptionsHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public SendOptionsHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            Native.noxy_send_options_free(handle);
            return true;
        }
    }

    /// <summary>noxy_operation, freed by noxy_operation_free (which does not cancel).</summary>
    internal sealed class OperationHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public OperationHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            Native.noxy_operation_free(handle);
            return true;
        }
    }

    /// <summary>noxy_error, freed by noxy_error_free. Invalid (NULL) means success.</summary>
    internal sealed class ErrorHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public ErrorHandle() : base(true) { }

        internal ErrorHandle(IntPtr owned) : base(true)
        {
            SetHandle(owned);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_error_free(handle);
            return true;
        }
    }

    /// <summary>noxy_send_result, freed by noxy_send_result_free.</summary>
    internal sealed class SendResultHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public SendResultHandle() : base(true) { }

        internal SendResultHandle(IntPtr owned) : base(true)
        {
            SetHandle(owned);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_send_result_free(handle);
            return true;
        }
    }

    /// <summary>noxy_decision_result, freed by noxy_decision_result_free.</summary>
    internal sealed class DecisionResultHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public DecisionResultHandle() : base(true) { }

        internal DecisionResultHandle(IntPtr owned) : base(true)
        {
            SetHandle(owned);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_decision_result_free(handle);
            return true;
        }
    }

    /// <summary>noxy_quota, freed by noxy_quota_free.</summary>
    internal sealed class QuotaHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public QuotaHandle() : base(true) { }

        internal QuotaHandle(IntPtr owned) : base(true)
        {
            SetHandle(owned);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_quota_free(handle);
            return true;
        }
    }

    /// <summary>noxy_devices, freed by noxy_devices_free.</summary>
    internal sealed class DevicesHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public DevicesHandle() : base(true) { }

        internal DevicesHandle(IntPtr owned) : base(true)
        {
            SetHandle(owned);
        }

        protected override bool ReleaseHandle()
        {
            Native.noxy_devices_free(handle);
            return true;
        }
    }
}
