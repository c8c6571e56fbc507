//! Per-device encryption cost. The target: a 1 KiB decision encrypted for one device in at most
//! ~63 µs (half of the Python SDK's 127 µs).
//!
//! Run: `cargo bench --bench crypto -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use libcrux_ml_kem::mlkem768::{self, MlKem768PublicKey};
use ml_kem::array::Array;
use ml_kem::{Encapsulate, EncapsulationKey768};
use noxy::crypto::device::DeviceKeyPair;
use noxy::crypto::{encrypt_for_device, validate_pq_public_key};

/// A JSON object of exactly 1024 bytes, shaped like a real decision payload.
fn payload_1kib() -> Vec<u8> {
    let head = r#"{"kind":"approval","tool":"transfer","args":{"to":"0x52908400098527886E0F7030069857D2E4169EE7","amount":"10"},"title":"Approve transfer","summary":""#;
    let tail = r#""}"#;
    let filler = "x".repeat(1024 - head.len() - tail.len());
    let payload = format!("{head}{filler}{tail}").into_bytes();
    assert_eq!(payload.len(), 1024);
    payload
}

fn benches(c: &mut Criterion) {
    let device = DeviceKeyPair::generate().expect("key pair");
    let public_key = device.public_key().to_vec();
    let payload = payload_1kib();

    c.benchmark_group("mlkem768_encapsulate")
        .bench_function("libcrux", |b| {
            b.iter(|| {
                let key = MlKem768PublicKey::try_from(black_box(public_key.as_slice())).unwrap();
                assert!(mlkem768::validate_public_key(&key));
                let mut randomness = [0u8; 32];
                getrandom::fill(&mut randomness).unwrap();
                mlkem768::encapsulate(&key, randomness)
            })
        });

    c.benchmark_group("mlkem768_encapsulate_rustcrypto")
        .bench_function("ml-kem 0.3.4", |b| {
            b.iter(|| {
                let bytes = Array::try_from(black_box(public_key.as_slice())).unwrap();
                EncapsulationKey768::new(&bytes).unwrap().encapsulate()
            })
        });

    c.benchmark_group("encrypt_for_device_1KiB")
        .bench_function("validate+encaps+hkdf+aes-gcm", |b| {
            b.iter(|| encrypt_for_device(black_box(&public_key), black_box(&payload)).unwrap())
        });

    c.benchmark_group("validate_pq_public_key")
        .bench_function("length+modulus check", |b| {
            b.iter(|| validate_pq_public_key(black_box(&public_key)).unwrap())
        });
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
