//! The client: one relay connection, shared by every call; cheap to clone.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::answers;
use crate::cancel::Cancel;
use crate::config::{normalize_endpoint, ClientConfig};
use crate::error::{Error, Result};
use crate::proto;
use crate::transport::{final_answer, Rpc, Transport};

/// A client of the Noxy relay. Clones share one HTTP/2 connection and one closed state.
///
/// Construct it inside a Tokio runtime; it connects lazily, on the first call, so the relay
/// need not be up yet.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) config: ClientConfig,
    pub(crate) closed: CancellationToken,
    /// The relay as `host:port`: the namespace of ids derived from idempotency keys.
    pub(crate) id_scope: String,
    /// Decisions being routed at once (see `send_with`).
    pub(crate) routing: tokio::sync::Semaphore,
}

/// A device registered for an identity, as the relay lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityDevice {
    /// The relay's id for the device.
    pub device_id: String,
    /// The device's classical (Ed25519) public key; unused by the agent side.
    pub public_key: Vec<u8>,
    /// The device's ML-KEM-768 encapsulation key (1184 bytes when well-formed).
    pub pq_public_key: Vec<u8>,
}

/// The app's quota state (`QuotaStatus` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QuotaStatus {
    /// The app may route decisions.
    Active = 0,
    /// The app is suspended: decisions are rejected.
    Suspended = 1,
    /// The app was deleted.
    Deleted = 2,
}

/// The app's quota, as the relay reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The app's name.
    pub app_name: String,
    /// Decisions allowed in total.
    pub quota_total: u64,
    /// Decisions left.
    pub quota_remaining: u64,
    /// Whether the app may route decisions.
    pub status: QuotaStatus,
}

impl Client {
    /// Validates `config` (the error names the first invalid field) and prepares the
    /// connection without connecting. Must be called within a Tokio runtime.
    pub fn new(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid_argument(
                "runtime",
                "Client::new must be called within a Tokio runtime",
            ));
        }
        let transport = Transport::new(&config)?;
        let address = normalize_endpoint(&config.endpoint)?;
        let routing = tokio::sync::Semaphore::new(config.max_concurrent_requests as usize);
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                config,
                closed: CancellationToken::new(),
                id_scope: format!("{}:{}", address.host, address.port),
                routing,
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Closes the client: every call in flight and every later call ends with
    /// [`ErrorCode::Cancelled`](crate::ErrorCode::Cancelled). The connection is released when
    /// the last clone is dropped. Idempotent.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Whether [`Client::close`] was called (on this client or a clone).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    pub(crate) fn cancel_for(&self, caller: Option<&CancellationToken>) -> Cancel {
        Cancel::new(&self.inner.closed, caller)
    }

    /// Lists the devices registered for `identity_id` (a wallet address, an email, a user id).
    pub async fn get_identity_devices(&self, identity_id: &str) -> Result<Vec<IdentityDevice>> {
        self.identity_devices(identity_id, &self.cancel_for(None))
            .await
    }

    pub(crate) async fn identity_devices(
        &self,
        identity_id: &str,
        cancel: &Cancel,
    ) -> Result<Vec<IdentityDevice>> {
        require_non_empty("identity_id", identity_id)?;
        let request = proto::GetIdentityDevicesRequest {
            request_id: new_request_id(),
            identity_id: identity_id.to_owned(),
        };
        let response: proto::GetIdentityDevicesResponse = self
            .inner
            .transport
            .call(
                Rpc::GetIdentityDevices,
                cancel,
                true,
                final_answer,
                &request,
            )
            .await?;
        Ok(answers::devices(response))
    }

    /// The app's quota.
    pub async fn get_quota(&self) -> Result<Quota> {
        let request = proto::GetQuotaRequest {
            request_id: new_request_id(),
        };
        let response: proto::GetQuotaResponse = self
            .inner
            .transport
            .call(
                Rpc::GetQuota,
                &self.cancel_for(None),
                true,
                final_answer,
                &request,
            )
            .await?;
        answers::quota(response)
    }
}

/// A fresh random request id (UUID v4).
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn require_non_empty(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_argument(field, "is empty"));
    }
    Ok(())
}
