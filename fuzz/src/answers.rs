//! Targets `answers` and `answers_structured`: what a broken or hostile relay controls. Bytes
//! are decoded as each of the relay's four answer messages (prost, as the transport decodes
//! them) and mapped into the library's results (`noxy::fuzzing::decode_and_map_every_answer`);
//! a device list's keys go through the encryption for that device.
//!
//! `answers` feeds the raw bytes. `answers_structured` builds the messages with `arbitrary`
//! (enum values near the known ones, ML-KEM keys of the exact length, unknown fields,
//! concatenated messages, which prost merges) and encodes them with messages written here
//! from `proto/agent.proto`, so that the mapping code is reached on most inputs instead of
//! rarely.

use arbitrary::{Arbitrary, Unstructured};
use prost::Message;

/// The target `answers`.
pub fn run(data: &[u8]) {
    noxy::fuzzing::decode_and_map_every_answer(data);
}

/// The target `answers_structured`.
pub fn run_structured(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(answers) = Vec::<Answer>::arbitrary(&mut input) else {
        return;
    };
    let mut joined = Vec::new();
    for answer in &answers {
        let bytes = answer.encode();
        noxy::fuzzing::decode_and_map_every_answer(&bytes);
        joined.extend_from_slice(&bytes);
    }
    // Concatenated messages merge (scalars: the last wins; repeated fields append).
    noxy::fuzzing::decode_and_map_every_answer(&joined);
}

/// The relay's messages, as in `proto/agent.proto` (same numbers and wire types).
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeliveryOutcome {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(string, tag = "2")]
        pub request_id: String,
        #[prost(string, tag = "3")]
        pub decision_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetDecisionOutcomeResponse {
        #[prost(string, tag = "1")]
        pub request_id: String,
        #[prost(bool, tag = "2")]
        pub pending: bool,
        #[prost(int32, tag = "3")]
        pub outcome: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetQuotaResponse {
        #[prost(string, tag = "1")]
        pub request_id: String,
        #[prost(string, tag = "2")]
        pub app_name: String,
        #[prost(uint64, tag = "3")]
        pub quota_total: u64,
        #[prost(uint64, tag = "4")]
        pub quota_remaining: u64,
        #[prost(int32, tag = "5")]
        pub status: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IdentityDevice {
        #[prost(string, tag = "1")]
        pub device_id: String,
        #[prost(bytes = "vec", tag = "2")]
        pub public_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub pq_public_key: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetIdentityDevicesResponse {
        #[prost(string, tag = "1")]
        pub request_id: String,
        #[prost(message, repeated, tag = "2")]
        pub devices: Vec<IdentityDevice>,
    }
}

/// The length of a well-formed ML-KEM-768 encapsulation key.
const PQ_KEY_LEN: usize = 1184;

/// An enum field: mostly near the values the proto defines, sometimes anything.
#[derive(Debug, Arbitrary)]
enum EnumValue {
    Small(u8),
    Negative(i8),
    Any(i32),
}

impl EnumValue {
    fn get(&self) -> i32 {
        match *self {
            EnumValue::Small(v) => i32::from(v % 8),
            EnumValue::Negative(v) => i32::from(v),
            EnumValue::Any(v) => v,
        }
    }
}

/// An ML-KEM key field: of the exact length (so that the encapsulation-key check and the
/// encryption run), one byte off, empty, or arbitrary.
#[derive(Debug, Arbitrary)]
enum PqKey {
    Exact { seed: Vec<u8>, fill: u8 },
    OneShort(u8),
    OneLong(u8),
    Empty,
    Bytes(Vec<u8>),
}

impl PqKey {
    fn bytes(&self) -> Vec<u8> {
        match self {
            PqKey::Exact { seed, fill } => {
                let mut key = vec![*fill; PQ_KEY_LEN];
                let n = seed.len().min(PQ_KEY_LEN);
                key[..n].copy_from_slice(&seed[..n]);
                key
            }
            PqKey::OneShort(fill) => vec![*fill; PQ_KEY_LEN - 1],
            PqKey::OneLong(fill) => vec![*fill; PQ_KEY_LEN + 1],
            PqKey::Empty => Vec::new(),
            PqKey::Bytes(bytes) => bytes.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Device {
    device_id: String,
    public_key: Vec<u8>,
    pq_public_key: PqKey,
}

/// One answer message, with fields and unknown trailing bytes chosen by the fuzzer.
#[derive(Debug, Arbitrary)]
enum Answer {
    Delivery {
        status: EnumValue,
        request_id: String,
        decision_id: String,
        trailer: Trailer,
    },
    Outcome {
        request_id: String,
        pending: bool,
        outcome: EnumValue,
        trailer: Trailer,
    },
    Quota {
        request_id: String,
        app_name: String,
        quota_total: u64,
        quota_remaining: u64,
        status: EnumValue,
        trailer: Trailer,
    },
    Devices {
        request_id: String,
        devices: Vec<Device>,
        trailer: Trailer,
    },
    Raw(Vec<u8>),
}

/// What follows a message's known fields: nothing, an unknown field, or raw bytes.
#[derive(Debug, Arbitrary)]
enum Trailer {
    None,
    UnknownVarint { field: u16, value: u64 },
    UnknownBytes { field: u16, value: Vec<u8> },
    Raw(Vec<u8>),
}

impl Trailer {
    fn append(&self, out: &mut Vec<u8>) {
        match self {
            Trailer::None => {}
            Trailer::UnknownVarint { field, value } => {
                let tag = u64::from(*field).max(16) << 3;
                prost::encoding::encode_varint(tag, out);
                prost::encoding::encode_varint(*value, out);
            }
            Trailer::UnknownBytes { field, value } => {
                let tag = (u64::from(*field).max(16) << 3) | 2;
                prost::encoding::encode_varint(tag, out);
                prost::encoding::encode_varint(value.len() as u64, out);
                out.extend_from_slice(value);
            }
            Trailer::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let trailer = match self {
            Answer::Delivery {
                status,
                request_id,
                decision_id,
                trailer,
            } => {
                wire::DeliveryOutcome {
                    status: status.get(),
                    request_id: request_id.clone(),
                    decision_id: decision_id.clone(),
                }
                .encode_raw(&mut out);
                trailer
            }
            Answer::Outcome {
                request_id,
                pending,
                outcome,
                trailer,
            } => {
                wire::GetDecisionOutcomeResponse {
                    request_id: request_id.clone(),
                    pending: *pending,
                    outcome: outcome.get(),
                }
                .encode_raw(&mut out);
                trailer
            }
            Answer::Quota {
                request_id,
                app_name,
                quota_total,
                quota_remaining,
                status,
                trailer,
            } => {
                wire::GetQuotaResponse {
                    request_id: request_id.clone(),
                    app_name: app_name.clone(),
                    quota_total: *quota_total,
                    quota_remaining: *quota_remaining,
                    status: status.get(),
                }
                .encode_raw(&mut out);
                trailer
            }
            Answer::Devices {
                request_id,
                devices,
                trailer,
            } => {
                wire::GetIdentityDevicesResponse {
                    request_id: request_id.clone(),
                    devices: devices
                        .iter()
                        .map(|d| wire::IdentityDevice {
                            device_id: d.device_id.clone(),
                            public_key: d.public_key.clone(),
                            pq_public_key: d.pq_public_key.bytes(),
                        })
                        .collect(),
                }
                .encode_raw(&mut out);
                trailer
            }
            Answer::Raw(bytes) => return bytes.clone(),
        };
        trailer.append(&mut out);
        out
    }
}
