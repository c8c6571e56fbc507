//! Cancellation of one operation: by its caller, or by closing the client.

use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// The two ways an operation ends early: the client is closed, or the caller's token fires.
#[derive(Clone, Debug)]
pub(crate) struct Cancel {
    client_closed: CancellationToken,
    caller: Option<CancellationToken>,
}

impl Cancel {
    pub(crate) fn new(
        client_closed: &CancellationToken,
        caller: Option<&CancellationToken>,
    ) -> Cancel {
        Cancel {
            client_closed: client_closed.clone(),
            caller: caller.cloned(),
        }
    }

    /// The error to report, if the operation has been cancelled.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.client_closed.is_cancelled() {
            return Err(Error::cancelled("the client is closed"));
        }
        if self
            .caller
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return Err(Error::cancelled("cancelled by the caller"));
        }
        Ok(())
    }

    /// Completes when either token fires, with the error to report.
    pub(crate) async fn cancelled(&self) -> Error {
        match &self.caller {
            Some(caller) => tokio::select! {
                _ = self.client_closed.cancelled() => Error::cancelled("the client is closed"),
                _ = caller.cancelled() => Error::cancelled("cancelled by the caller"),
            },
            None => {
                self.client_closed.cancelled().await;
                Error::cancelled("the client is closed")
            }
        }
    }
}
