//! Waiting for a person's answer: polling `GetDecisionOutcome` with capped exponential backoff,
//! within a total budget that is never overrun.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::answers;
use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::client::{new_request_id, require_non_empty, Client};
use crate::config::{check_duration, check_jitter, check_multiplier};
use crate::error::{Error, ErrorCode, Result};
use crate::payload::Payload;
use crate::proto;
use crate::routing::{DecisionError, SendOptions, SendResult};
use crate::transport::{final_answer, Rpc};

/// A decision's outcome (`DecisionOutcome` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DecisionOutcome {
    /// Not answered yet.
    Pending = 0,
    /// The person approved.
    Approved = 1,
    /// The person rejected.
    Rejected = 2,
    /// Nobody answered within the decision's TTL.
    Expired = 3,
}

/// What `GetDecisionOutcome` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionState {
    /// Whether the relay still waits for an answer.
    pub pending: bool,
    /// The outcome so far.
    pub outcome: DecisionOutcome,
}

/// Whether a decision state is final: APPROVED, REJECTED or EXPIRED, or no longer pending
/// (the relay's SDKs' `is_terminal_human_outcome`).
pub fn is_terminal_outcome(state: &DecisionState) -> bool {
    !state.pending || state.outcome != DecisionOutcome::Pending
}

/// How to wait for an outcome. The defaults are the relay SDKs': first pause 400 ms, ×1.6 after
/// each poll, at most 30 s between polls, at most 15 minutes in total, no jitter.
///
/// Explicit values are honoured as given, never replaced by defaults (a `max_wait` of zero
/// gives up at once).
#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// The pause after the first poll. Longer than zero.
    pub initial_interval: Duration,
    /// Each pause is this times the previous one; at least 1.
    pub multiplier: f64,
    /// No pause is longer than this; not shorter than `initial_interval`.
    pub max_interval: Duration,
    /// The whole wait never takes longer than this; then [`ErrorCode::WaitTimedOut`].
    pub max_wait: Duration,
    /// Fraction in `[0, 1]` of each pause that is randomised downwards.
    pub jitter: f64,
    /// Ends the wait early with [`ErrorCode::Cancelled`].
    pub cancel: Option<CancellationToken>,
}

/// Default first pause between polls.
pub const DEFAULT_POLL_INITIAL_INTERVAL: Duration = Duration::from_millis(400);
/// Default growth of the pause between polls.
pub const DEFAULT_POLL_MULTIPLIER: f64 = 1.6;
/// Default longest pause between polls.
pub const DEFAULT_POLL_MAX_INTERVAL: Duration = Duration::from_secs(30);
/// Default total wait budget.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            initial_interval: DEFAULT_POLL_INITIAL_INTERVAL,
            multiplier: DEFAULT_POLL_MULTIPLIER,
            max_interval: DEFAULT_POLL_MAX_INTERVAL,
            max_wait: DEFAULT_MAX_WAIT,
            jitter: 0.0,
            cancel: None,
        }
    }
}

impl WaitOptions {
    /// Checks every field; the error names the first invalid one. Durations are at most
    /// [`MAX_DURATION`](crate::config::MAX_DURATION) (365 days).
    pub fn validate(&self) -> Result<()> {
        check_duration("initial_interval", self.initial_interval, true)?;
        check_multiplier("multiplier", self.multiplier)?;
        check_duration("max_interval", self.max_interval, false)?;
        if self.max_interval < self.initial_interval {
            return Err(Error::invalid_argument(
                "max_interval",
                "must not be shorter than initial_interval",
            ));
        }
        check_duration("max_wait", self.max_wait, false)?;
        check_jitter("jitter", self.jitter)
    }
}

/// The result of [`Client::send_decision_and_wait_for_outcome`].
#[derive(Clone, Debug)]
pub struct DecisionResult {
    /// What routing returned (decision id, per-device deliveries, plaintext digest).
    pub sent: SendResult,
    /// The decision id that was waited on: the first one the relay accepted.
    pub decision_id: String,
    /// The terminal state.
    pub state: DecisionState,
}

impl Client {
    /// Asks the relay once for the state of `decision_id` of `identity_id`.
    pub async fn get_decision_outcome(
        &self,
        decision_id: &str,
        identity_id: &str,
    ) -> Result<DecisionState> {
        check_outcome_query(decision_id, identity_id)?;
        self.poll_outcome(decision_id, identity_id, &self.cancel_for(None), true)
            .await
    }

    async fn poll_outcome(
        &self,
        decision_id: &str,
        identity_id: &str,
        cancel: &Cancel,
        retry: bool,
    ) -> Result<DecisionState> {
        let request = proto::GetDecisionOutcomeRequest {
            request_id: new_request_id(),
            decision_id: decision_id.to_owned(),
            identity_id: identity_id.to_owned(),
        };
        let answer: proto::GetDecisionOutcomeResponse = self
            .inner
            .transport
            .call(
                Rpc::GetDecisionOutcome,
                cancel,
                retry,
                final_answer,
                &request,
            )
            .await?;
        answers::decision_state(answer)
    }

    /// Polls until the decision is terminal, the budget `options.max_wait` is used up
    /// ([`ErrorCode::WaitTimedOut`]), or the wait is cancelled. A poll that fails transiently
    /// (the relay briefly unreachable) is retried within the budget instead of ending the wait.
    /// The budget is never overrun: an unfinished poll is cut off at the deadline, and the last
    /// pause is shortened so that the last poll can finish before it.
    pub async fn wait_for_decision_outcome(
        &self,
        decision_id: &str,
        identity_id: &str,
        options: &WaitOptions,
    ) -> Result<DecisionState> {
        check_wait(decision_id, identity_id, options)?;
        let cancel = self.cancel_for(options.cancel.as_ref());
        self.wait_with(decision_id, identity_id, options, &cancel)
            .await
    }

    /// `wait_for_decision_outcome` for an operation that owns its inputs (the C ABI's async
    /// calls); the decision id comes back with the state.
    pub(crate) async fn wait_owned(
        self,
        decision_id: String,
        identity_id: String,
        options: WaitOptions,
    ) -> Result<(String, DecisionState)> {
        let cancel = self.cancel_for(options.cancel.as_ref());
        let state = self
            .wait_with(&decision_id, &identity_id, &options, &cancel)
            .await?;
        Ok((decision_id, state))
    }

    pub(crate) async fn wait_with(
        &self,
        decision_id: &str,
        identity_id: &str,
        options: &WaitOptions,
        cancel: &Cancel,
    ) -> Result<DecisionState> {
        check_wait(decision_id, identity_id, options)?;
        let deadline = Instant::now() + options.max_wait;
        let timed_out = || {
            Error::new(
                ErrorCode::WaitTimedOut,
                format!(
                    "wait timed out: decision {decision_id} still pending after {:?}",
                    options.max_wait
                ),
            )
        };
        let mut backoff = Backoff::new(
            options.initial_interval,
            options.multiplier,
            options.max_interval,
            options.jitter,
        );
        let mut polls: u32 = 0;
        loop {
            polls += 1;
            let poll_started = Instant::now();
            // Boxed: a poll's state exists only while it runs, not while the wait sleeps.
            let poll = Box::pin(self.poll_outcome(decision_id, identity_id, cancel, false));
            match tokio::time::timeout_at(deadline, poll).await {
                Err(_deadline) => return Err(timed_out()),
                Ok(Ok(state)) if is_terminal_outcome(&state) => return Ok(state),
                Ok(Ok(_pending)) => {}
                Ok(Err(error)) if error.is_transient() => {
                    tracing::info!(
                        poll = polls,
                        status = error.code().name(),
                        "outcome poll failed transiently; still waiting"
                    );
                }
                Ok(Err(error)) => return Err(error),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out());
            }
            // Leave room for the next poll to finish before the deadline, judged by how long
            // this one took.
            let last_poll = now - poll_started;
            let room = (deadline - now).saturating_sub(last_poll);
            let pause = backoff.next_pause().min(room);
            tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Routes a decision and waits for its outcome. Waits on the decision id of the first
    /// delivery the relay accepted (DELIVERED or QUEUED); when none was accepted, fails with
    /// [`ErrorCode::NoDecisionId`] and the per-device results attached
    /// ([`DecisionError::deliveries`]). Errors of the waiting phase carry the deliveries too, so
    /// the host still learns which decision was routed.
    pub async fn send_decision_and_wait_for_outcome(
        &self,
        identity_id: &str,
        payload: &Payload,
        send_options: &SendOptions,
        wait_options: &WaitOptions,
    ) -> Result<DecisionResult, DecisionError> {
        self.check_send_and_wait(identity_id, send_options, wait_options)?;
        let (send_cancel, wait_cancel) = self.phase_cancels(send_options, wait_options);
        // Boxed: the send phase is large and short; the wait that follows stays small.
        let sent =
            Box::pin(self.send_with(identity_id, payload, send_options, &send_cancel)).await?;
        self.wait_after_send(sent, identity_id, wait_options, &wait_cancel)
            .await
    }

    /// Send-and-wait for an operation that owns its inputs (the C ABI's async calls): the
    /// payload and the send options are released as soon as the send phase ends, so that
    /// thousands of waiting decisions hold only what waiting needs.
    pub(crate) async fn send_and_wait_owned(
        self,
        identity_id: String,
        payload: Payload,
        send_options: SendOptions,
        wait_options: WaitOptions,
    ) -> Result<DecisionResult, DecisionError> {
        self.check_send_and_wait(&identity_id, &send_options, &wait_options)?;
        let (send_cancel, wait_cancel) = self.phase_cancels(&send_options, &wait_options);
        let sent =
            Box::pin(self.send_with(&identity_id, &payload, &send_options, &send_cancel)).await?;
        drop(payload);
        drop(send_options);
        drop(send_cancel);
        self.wait_after_send(sent, &identity_id, &wait_options, &wait_cancel)
            .await
    }

    /// Every check send-and-wait makes before contacting the relay.
    pub(crate) fn check_send_and_wait(
        &self,
        identity_id: &str,
        send_options: &SendOptions,
        wait_options: &WaitOptions,
    ) -> Result<()> {
        self.check_send(identity_id, send_options)?;
        wait_options.validate()
    }

    /// The cancellation of each phase: either token cancels either phase, so a host may set
    /// just one of them.
    fn phase_cancels(&self, send: &SendOptions, wait: &WaitOptions) -> (Cancel, Cancel) {
        let send_token = send.cancel.as_ref().or(wait.cancel.as_ref());
        let wait_token = wait.cancel.as_ref().or(send.cancel.as_ref());
        (self.cancel_for(send_token), self.cancel_for(wait_token))
    }

    async fn wait_after_send(
        &self,
        sent: SendResult,
        identity_id: &str,
        wait_options: &WaitOptions,
        cancel: &Cancel,
    ) -> Result<DecisionResult, DecisionError> {
        let Some(decision_id) = sent.accepted_decision_id().map(str::to_owned) else {
            let summary = summarize(&sent);
            return Err(DecisionError {
                error: Error::new(
                    ErrorCode::NoDecisionId,
                    format!(
                        "no decision id to wait on: the relay accepted no delivery ({summary})"
                    ),
                ),
                deliveries: sent.deliveries,
            });
        };
        match self
            .wait_with(&decision_id, identity_id, wait_options, cancel)
            .await
        {
            Ok(state) => Ok(DecisionResult {
                sent,
                decision_id,
                state,
            }),
            Err(error) => Err(DecisionError {
                error,
                deliveries: sent.deliveries,
            }),
        }
    }
}

/// The checks of a single outcome query.
pub(crate) fn check_outcome_query(decision_id: &str, identity_id: &str) -> Result<()> {
    require_non_empty("decision_id", decision_id)?;
    require_non_empty("identity_id", identity_id)
}

/// Every check `wait_for_decision_outcome` makes before contacting the relay.
pub(crate) fn check_wait(
    decision_id: &str,
    identity_id: &str,
    options: &WaitOptions,
) -> Result<()> {
    check_outcome_query(decision_id, identity_id)?;
    options.validate()
}

fn summarize(sent: &SendResult) -> String {
    if sent.deliveries.is_empty() {
        return "the identity has no devices".to_owned();
    }
    sent.deliveries
        .iter()
        .map(|d| match &d.outcome {
            Ok(delivery) => format!("{}: {:?}", d.device_id, delivery.status),
            Err(error) => format!("{}: {}", d.device_id, error.code()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_outcomes() {
        let state = |pending, outcome| DecisionState { pending, outcome };
        assert!(!is_terminal_outcome(&state(true, DecisionOutcome::Pending)));
        assert!(is_terminal_outcome(&state(false, DecisionOutcome::Pending)));
        assert!(is_terminal_outcome(&state(
            false,
            DecisionOutcome::Approved
        )));
        assert!(is_terminal_outcome(&state(true, DecisionOutcome::Rejected)));
        assert!(is_terminal_outcome(&state(false, DecisionOutcome::Expired)));
    }

    #[test]
    fn wait_options_defaults_and_validation() {
        let defaults = WaitOptions::default();
        assert_eq!(defaults.initial_interval, Duration::from_millis(400));
        assert_eq!(defaults.multiplier, 1.6);
        assert_eq!(defaults.max_interval, Duration::from_secs(30));
        assert_eq!(defaults.max_wait, Duration::from_secs(900));
        defaults.validate().unwrap();
        let zero_wait = WaitOptions {
            max_wait: Duration::ZERO,
            ..WaitOptions::default()
        };
        zero_wait.validate().unwrap();
        let cases: [(&str, WaitOptions); 7] = [
            (
                "max_wait",
                WaitOptions {
                    max_wait: Duration::from_millis(u64::MAX),
                    ..Default::default()
                },
            ),
            (
                "initial_interval",
                WaitOptions {
                    initial_interval: Duration::from_millis(u64::MAX),
                    max_interval: Duration::from_millis(u64::MAX),
                    ..Default::default()
                },
            ),
            (
                "max_interval",
                WaitOptions {
                    max_interval: crate::config::MAX_DURATION + Duration::from_millis(1),
                    ..Default::default()
                },
            ),
            (
                "initial_interval",
                WaitOptions {
                    initial_interval: Duration::ZERO,
                    ..Default::default()
                },
            ),
            (
                "multiplier",
                WaitOptions {
                    multiplier: 0.9,
                    ..Default::default()
                },
            ),
            (
                "max_interval",
                WaitOptions {
                    max_interval: Duration::from_millis(1),
                    ..Default::default()
                },
            ),
            (
                "jitter",
                WaitOptions {
                    jitter: -0.1,
                    ..Default::default()
                },
            ),
        ];
        for (field, options) in cases {
            let err = options.validate().unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().starts_with(field), "{err}");
        }
    }
}
