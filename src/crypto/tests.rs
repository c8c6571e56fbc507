//! Unit tests of the per-device encryption: round trips, interoperability with RustCrypto's
//! independent ML-KEM implementation, tampering, input checks and FIPS 203 known answers.

use hkdf::Hkdf;
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use ml_kem::array::Array;
use ml_kem::{Decapsulate, DecapsulationKey768, EncapsulationKey768, KeyExport};
use serde::Deserialize;
use sha2::Sha256;

use super::device::{decrypt_with_secret_key, DeviceKeyPair};
use super::*;
use crate::error::ErrorCode;

const PAYLOAD: &[u8] = br#"{"kind":"approval","tool":"transfer","args":{"amount":"10"},"title":"Pay","summary":"Pay 10"}"#;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("system RNG");
    bytes
}

fn assert_error(result: Result<impl std::fmt::Debug>, code: ErrorCode, field_or_text: &str) {
    let error = result.expect_err("expected an error");
    assert_eq!(error.code(), code, "{error}");
    assert!(error.message().contains(field_or_text), "{error}");
}

/// A key pair of RustCrypto's ml-kem, from the same FIPS 203 seed layout as ours.
fn rustcrypto_key(d: &[u8; 32], z: &[u8; 32]) -> DecapsulationKey768 {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(d);
    seed[32..].copy_from_slice(z);
    DecapsulationKey768::from_seed(Array::from(seed))
}

/// Device-side decryption done by RustCrypto's ML-KEM and this module's HKDF + AES-GCM.
fn decrypt_with_rustcrypto(
    key: &DecapsulationKey768,
    encrypted: &EncryptedDecision,
) -> Result<Vec<u8>> {
    let shared_secret: [u8; 32] = key
        .decapsulate_slice(&encrypted.kyber_ct)
        .expect("1088-byte ciphertext")
        .into();
    open(&shared_secret, &encrypted.nonce, &encrypted.ciphertext)
}

#[test]
fn round_trip_for_every_payload_size() {
    let pair = DeviceKeyPair::generate().unwrap();
    for size in [0, 1, 1024, 64 * 1024] {
        let plaintext: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let encrypted = encrypt_for_device(pair.public_key(), &plaintext).unwrap();
        assert_eq!(encrypted.kyber_ct.len(), KYBER_CT_LEN);
        assert_eq!(encrypted.ciphertext.len(), size + TAG_LEN);
        assert_eq!(pair.decrypt(&encrypted).unwrap(), plaintext, "size {size}");
        assert_eq!(
            decrypt_with_secret_key(pair.secret_key(), &encrypted).unwrap(),
            plaintext,
            "size {size}"
        );
    }
}

#[test]
fn key_sizes_match_the_constants() {
    let pair = DeviceKeyPair::generate().unwrap();
    assert_eq!(pair.public_key().len(), PQ_PUBLIC_KEY_LEN);
    assert_eq!(pair.secret_key().len(), PQ_SECRET_KEY_LEN);
    validate_pq_public_key(pair.public_key()).unwrap();
    assert_ne!(
        DeviceKeyPair::generate().unwrap().public_key(),
        pair.public_key()
    );
}

#[test]
fn libcrux_encapsulation_decrypts_with_rustcrypto_decapsulation() {
    for _ in 0..20 {
        let rustcrypto = rustcrypto_key(&random_bytes(), &random_bytes());
        let public_key = rustcrypto.encapsulation_key().to_bytes();
        let encrypted = encrypt_for_device(&public_key, PAYLOAD).unwrap();
        assert_eq!(
            decrypt_with_rustcrypto(&rustcrypto, &encrypted).unwrap(),
            PAYLOAD
        );
    }
}

#[test]
fn rustcrypto_encapsulation_decrypts_on_the_libcrux_device() {
    for _ in 0..20 {
        let (d, z) = (random_bytes(), random_bytes());
        let rustcrypto = rustcrypto_key(&d, &z);
        let device = DeviceKeyPair::from_seed(&d, &z);
        // Same seed, same FIPS 203 key pair in both implementations.
        assert_eq!(
            device.public_key(),
            rustcrypto.encapsulation_key().to_bytes().as_slice()
        );
        #[allow(deprecated)] // the expanded form is the one devices store
        let expanded = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&rustcrypto);
        assert_eq!(device.secret_key(), expanded.as_slice());

        let m = Array::from(random_bytes::<32>());
        let (kyber_ct, shared_secret) =
            rustcrypto.encapsulation_key().encapsulate_deterministic(&m);
        let nonce = random_bytes();
        let encrypted = EncryptedDecision {
            kyber_ct: kyber_ct.to_vec(),
            nonce,
            ciphertext: seal(&shared_secret.into(), &nonce, PAYLOAD).unwrap(),
        };
        assert_eq!(device.decrypt(&encrypted).unwrap(), PAYLOAD);
    }
}

#[test]
fn implicit_rejection_agrees_across_implementations() {
    let (d, z) = (random_bytes(), random_bytes());
    let device = DeviceKeyPair::from_seed(&d, &z);
    let rustcrypto = rustcrypto_key(&d, &z);
    let mut encrypted = encrypt_for_device(device.public_key(), PAYLOAD).unwrap();
    encrypted.kyber_ct[100] ^= 0x01;
    let private_key = MlKem768PrivateKey::try_from(device.secret_key()).unwrap();
    let kyber_ct = MlKem768Ciphertext::try_from(encrypted.kyber_ct.as_slice()).unwrap();
    let libcrux_secret = mlkem768::decapsulate(&private_key, &kyber_ct);
    let rustcrypto_secret = rustcrypto.decapsulate_slice(&encrypted.kyber_ct).unwrap();
    assert_eq!(libcrux_secret.as_slice(), rustcrypto_secret.as_slice());
}

#[test]
fn tampering_is_detected() {
    let pair = DeviceKeyPair::generate().unwrap();
    let original = encrypt_for_device(pair.public_key(), PAYLOAD).unwrap();
    let tag_start = original.ciphertext.len() - TAG_LEN;
    for what in ["ciphertext", "tag", "nonce", "kyber_ct"] {
        let mut encrypted = original.clone();
        match what {
            "ciphertext" => encrypted.ciphertext[0] ^= 0x01,
            "tag" => encrypted.ciphertext[tag_start + 15] ^= 0x80,
            "nonce" => encrypted.nonce[11] ^= 0x01,
            _ => encrypted.kyber_ct[KYBER_CT_LEN - 1] ^= 0x01,
        }
        assert_ne!(encrypted, original, "{what}");
        assert_error(
            pair.decrypt(&encrypted),
            ErrorCode::Protocol,
            "AES-GCM authentication failed",
        );
        assert_error(
            decrypt_with_secret_key(pair.secret_key(), &encrypted),
            ErrorCode::Protocol,
            "AES-GCM authentication failed",
        );
    }
    // A decision for another device does not open either.
    let other = DeviceKeyPair::generate().unwrap();
    assert_error(
        other.decrypt(&original),
        ErrorCode::Protocol,
        "authentication",
    );
}

#[test]
fn wrong_public_key_sizes_are_rejected() {
    for size in [0, 1183, 1185, 800] {
        let key = vec![0u8; size];
        let expected = format!("pq_public_key: expected 1184 bytes, got {size}");
        assert_error(
            validate_pq_public_key(&key),
            ErrorCode::InvalidArgument,
            &expected,
        );
        assert_error(
            encrypt_for_device(&key, PAYLOAD),
            ErrorCode::InvalidArgument,
            &expected,
        );
        assert_error(
            encrypt_for_device_deterministic(&key, PAYLOAD, &[7; 32], &[9; NONCE_LEN]),
            ErrorCode::InvalidArgument,
            &expected,
        );
    }
}

#[test]
fn wrong_device_side_sizes_are_rejected() {
    let pair = DeviceKeyPair::generate().unwrap();
    let good = encrypt_for_device(pair.public_key(), PAYLOAD).unwrap();

    for size in [0, PQ_SECRET_KEY_LEN - 1, PQ_SECRET_KEY_LEN + 1, 1632] {
        assert_error(
            decrypt_with_secret_key(&vec![0u8; size], &good),
            ErrorCode::InvalidArgument,
            &format!("secret_key: expected 2400 bytes, got {size}"),
        );
    }
    for size in [0, KYBER_CT_LEN - 1, KYBER_CT_LEN + 1] {
        let mut encrypted = good.clone();
        encrypted.kyber_ct.resize(size, 0);
        let expected = format!("kyber_ct: expected 1088 bytes, got {size}");
        assert_error(
            pair.decrypt(&encrypted),
            ErrorCode::InvalidArgument,
            &expected,
        );
        assert_error(
            decrypt_with_secret_key(pair.secret_key(), &encrypted),
            ErrorCode::InvalidArgument,
            &expected,
        );
    }
    for size in [0, TAG_LEN - 1] {
        let mut encrypted = good.clone();
        encrypted.ciphertext.truncate(size);
        let expected = format!("ciphertext: expected at least the 16-byte tag, got {size} bytes");
        assert_error(
            pair.decrypt(&encrypted),
            ErrorCode::InvalidArgument,
            &expected,
        );
        assert_error(
            decrypt_with_secret_key(pair.secret_key(), &encrypted),
            ErrorCode::InvalidArgument,
            &expected,
        );
    }
}

#[test]
fn a_secret_key_failing_the_hash_check_is_rejected() {
    let pair = DeviceKeyPair::generate().unwrap();
    let encrypted = encrypt_for_device(pair.public_key(), PAYLOAD).unwrap();
    let mut secret_key = pair.secret_key().to_vec();
    secret_key[1152 + 10] ^= 0x01; // inside the embedded ek, so H(ek) no longer matches
    assert_error(
        decrypt_with_secret_key(&secret_key, &encrypted),
        ErrorCode::InvalidArgument,
        "secret_key: not an ML-KEM-768 decapsulation key",
    );
}

/// Sets the first 12-bit coefficient of the encoded vector t̂ to `value`.
fn with_first_coefficient(public_key: &[u8], value: u16) -> Vec<u8> {
    let mut key = public_key.to_vec();
    key[0] = (value & 0xFF) as u8;
    key[1] = (key[1] & 0xF0) | (value >> 8) as u8;
    key
}

#[test]
fn a_key_failing_the_modulus_check_is_rejected() {
    let pair = DeviceKeyPair::generate().unwrap();
    for value in [0xFFF, 3329] {
        let malformed = with_first_coefficient(pair.public_key(), value);
        let expected = "pq_public_key: not an ML-KEM-768 encapsulation key";
        assert_error(
            validate_pq_public_key(&malformed),
            ErrorCode::InvalidArgument,
            expected,
        );
        assert_error(
            encrypt_for_device(&malformed, PAYLOAD),
            ErrorCode::InvalidArgument,
            expected,
        );
        // RustCrypto's independent check agrees.
        let array = Array::try_from(malformed.as_slice()).unwrap();
        assert!(EncapsulationKey768::new(&array).is_err(), "{value}");
    }
    // The largest reduced coefficient, q - 1, is fine.
    validate_pq_public_key(&with_first_coefficient(pair.public_key(), 3328)).unwrap();
}

#[test]
fn every_encryption_is_fresh() {
    let pair = DeviceKeyPair::generate().unwrap();
    let first = encrypt_for_device(pair.public_key(), PAYLOAD).unwrap();
    let second = encrypt_for_device(pair.public_key(), PAYLOAD).unwrap();
    assert_ne!(first.nonce, second.nonce);
    assert_ne!(first.kyber_ct, second.kyber_ct);
    assert_ne!(first.ciphertext, second.ciphertext);
}

#[test]
fn deterministic_encryption_is_reproducible() {
    let pair = DeviceKeyPair::from_seed(&[1; 32], &[2; 32]);
    let encrypt = |m: &[u8; 32], nonce: &[u8; NONCE_LEN]| {
        encrypt_for_device_deterministic(pair.public_key(), PAYLOAD, m, nonce).unwrap()
    };
    let first = encrypt(&[3; 32], &[4; NONCE_LEN]);
    assert_eq!(first, encrypt(&[3; 32], &[4; NONCE_LEN]));
    assert_eq!(first.nonce, [4; NONCE_LEN]);
    assert_eq!(pair.decrypt(&first).unwrap(), PAYLOAD);
    // Another m changes the KEM ciphertext; another nonce changes the AES-GCM ciphertext.
    assert_ne!(first.kyber_ct, encrypt(&[5; 32], &[4; NONCE_LEN]).kyber_ct);
    let other_nonce = encrypt(&[3; 32], &[6; NONCE_LEN]);
    assert_eq!(first.kyber_ct, other_nonce.kyber_ct);
    assert_ne!(first.ciphertext, other_nonce.ciphertext);
}

#[test]
fn hkdf_without_salt_is_rfc5869_and_equals_a_zero_salt() {
    // RFC 5869 test case 3: HKDF-SHA256 with an empty salt and empty info (first 32 bytes).
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(None, &[0x0b; 22])
        .expand(&[], &mut okm)
        .unwrap();
    assert_eq!(
        hex::encode(okm),
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
    );
    // The devices' "salt none" and 32 zero bytes give the same key.
    let shared_secret = random_bytes::<32>();
    let mut zero_salt_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&[0; 32]), &shared_secret)
        .expand(&[], &mut zero_salt_key)
        .unwrap();
    let mut aes_key = [0u8; 32];
    derive_aes_key(&shared_secret, &mut aes_key).unwrap();
    assert_eq!(aes_key, zero_salt_key);
}

#[test]
fn sha256_matches_fips_180_example() {
    assert_eq!(
        hex::encode(sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn debug_output_does_not_show_the_secret_key() {
    let pair = DeviceKeyPair::generate().unwrap();
    let debug = format!("{pair:?}");
    // Only the struct name, the public key's size and the "..." of non-exhaustive output.
    assert_eq!(debug, "DeviceKeyPair { public_key: 1184 bytes, .. }");
}

// FIPS 203 known-answer tests: NIST ACVP vectors, see tests/vectors/README.md.

/// Where a FIPS 203 ML-KEM-768 decapsulation key keeps its encapsulation key.
const EK_IN_DK: std::ops::Range<usize> = 1152..1152 + PQ_PUBLIC_KEY_LEN;

#[derive(Deserialize)]
struct VectorFile<Case> {
    #[serde(rename = "parameterSet")]
    parameter_set: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct KeyGenCase {
    #[serde(rename = "tcId")]
    tc_id: u32,
    d: String,
    z: String,
    dk: String,
}

#[derive(Deserialize)]
struct EncapCase {
    #[serde(rename = "tcId")]
    tc_id: u32,
    dk: String,
    m: String,
    c: String,
    k: String,
}

fn load<Case: for<'de> Deserialize<'de>>(json: &str) -> Vec<Case> {
    let file: VectorFile<Case> = serde_json::from_str(json).expect("vector file parses");
    assert_eq!(file.parameter_set, "ML-KEM-768");
    assert!(!file.tests.is_empty());
    file.tests
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text)
        .expect("hex")
        .try_into()
        .expect("field has the expected size")
}

#[test]
fn fips203_keygen_vectors() {
    let cases: Vec<KeyGenCase> = load(include_str!("../../tests/vectors/mlkem768_keygen.json"));
    for case in cases {
        let pair = DeviceKeyPair::from_seed(&unhex(&case.d), &unhex(&case.z));
        // Upper-case hex, as in the vector file, so that a failure shows a readable diff.
        let dk = hex::encode_upper(pair.secret_key());
        let ek = hex::encode_upper(pair.public_key());
        assert_eq!(
            ek,
            case.dk[EK_IN_DK.start * 2..EK_IN_DK.end * 2],
            "ek, tcId {}",
            case.tc_id
        );
        assert_eq!(dk, case.dk, "dk, tcId {}", case.tc_id);
    }
}

#[test]
fn fips203_encapsulation_and_decapsulation_vectors() {
    let cases: Vec<EncapCase> = load(include_str!("../../tests/vectors/mlkem768_encap.json"));
    for case in cases {
        let tc = case.tc_id;
        let dk: [u8; PQ_SECRET_KEY_LEN] = unhex(&case.dk);
        let ek = &dk[EK_IN_DK];
        let m: [u8; 32] = unhex(&case.m);
        let expected_c: [u8; KYBER_CT_LEN] = unhex(&case.c);
        let expected_k: [u8; 32] = unhex(&case.k);

        // The KEM itself.
        validate_pq_public_key(ek).unwrap();
        let public_key = MlKem768PublicKey::try_from(ek).unwrap();
        let (c, k) = mlkem768::encapsulate(&public_key, m);
        assert_eq!(c.as_slice(), &expected_c, "encapsulation c, tcId {tc}");
        assert_eq!(k, expected_k, "encapsulation k, tcId {tc}");
        let private_key = MlKem768PrivateKey::from(dk);
        let ciphertext = MlKem768Ciphertext::from(expected_c);
        assert_eq!(
            mlkem768::decapsulate(&private_key, &ciphertext),
            expected_k,
            "decapsulation, tcId {tc}"
        );

        // The module's encryption path uses exactly that c and k...
        let nonce = [tc as u8; NONCE_LEN];
        let encrypted = encrypt_for_device_deterministic(ek, PAYLOAD, &m, &nonce).unwrap();
        assert_eq!(encrypted.kyber_ct, expected_c, "tcId {tc}");
        assert_eq!(
            open(&expected_k, &nonce, &encrypted.ciphertext).unwrap(),
            PAYLOAD
        );
        // ...and its device path decapsulates c to k.
        let from_vector = EncryptedDecision {
            kyber_ct: expected_c.to_vec(),
            nonce,
            ciphertext: seal(&expected_k, &nonce, PAYLOAD).unwrap(),
        };
        assert_eq!(
            decrypt_with_secret_key(&dk, &from_vector).unwrap(),
            PAYLOAD,
            "tcId {tc}"
        );
    }
}
