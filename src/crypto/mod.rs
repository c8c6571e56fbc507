//! Per-device encryption of a decision, byte-exact with real Noxy devices.
//!
//! For each device: ML-KEM-768 (FIPS 203) encapsulation to the device's `pq_public_key` gives
//! `kyber_ct` and a 32-byte shared secret; HKDF-SHA256 (no salt, empty info) turns the shared
//! secret into an AES-256-GCM key; the UTF-8 JSON payload is sealed under a fresh 12-byte nonce
//! with no associated data, the 16-byte tag appended to the ciphertext.
//!
//! The KEM is libcrux-ml-kem (formally verified, AVX2 chosen at run time). Its `encapsulate`
//! accepts a malformed key, so every key goes through [`validate_pq_public_key`] first.
//!
//! # What is wiped
//! Wiped on every path (including errors): the KEM randomness and key-generation seeds we draw,
//! our copies of the shared secret, the derived AES key, the AES key schedule and the HMAC state
//! of the HKDF (the `zeroize` features of `aes-gcm` and `sha2` are on), and the device's secret
//! key when a [`device::DeviceKeyPair`] is dropped or a secret key is parsed for
//! [`device::decrypt_with_secret_key`].
//! Not wiped, because the crate gives no access to them: copies that libcrux makes internally
//! (it takes seeds and randomness by value and has no `zeroize`) and stack copies left by moving
//! its results. The decrypted plaintext is returned in a plain `Vec`.

pub mod device;
#[cfg(test)]
mod tests;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use libcrux_ml_kem::mlkem768::{self, MlKem768PublicKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Size of a device's ML-KEM-768 encapsulation key (`pq_public_key`), in bytes.
pub const PQ_PUBLIC_KEY_LEN: usize = 1184;
/// Size of an ML-KEM-768 decapsulation key (the device's secret key), in bytes.
pub const PQ_SECRET_KEY_LEN: usize = 2400;
/// Size of an ML-KEM-768 ciphertext (`kyber_ct`), in bytes.
pub const KYBER_CT_LEN: usize = 1088;
/// Size of the AES-256-GCM nonce, in bytes.
pub const NONCE_LEN: usize = 12;
/// Size of the AES-256-GCM tag appended to every ciphertext, in bytes.
pub const TAG_LEN: usize = 16;

/// Size of the ML-KEM shared secret and of the derived AES-256 key, in bytes.
const KEY_LEN: usize = 32;

/// One device's encrypted copy of a decision: the three fields of `RouteDecisionRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedDecision {
    /// The ML-KEM-768 ciphertext ([`KYBER_CT_LEN`] bytes).
    pub kyber_ct: Vec<u8>,
    /// The AES-256-GCM nonce, fresh per device per decision.
    pub nonce: [u8; NONCE_LEN],
    /// The AES-256-GCM ciphertext of the payload with the [`TAG_LEN`]-byte tag appended.
    pub ciphertext: Vec<u8>,
}

/// Checks that `pq_public_key` is an ML-KEM-768 encapsulation key: [`PQ_PUBLIC_KEY_LEN`] bytes
/// that pass the FIPS 203 §7.2 modulus check (every 12-bit coefficient below q = 3329).
/// Cheap enough (a few microseconds) to call per device.
///
/// # Errors
/// [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) naming
/// `pq_public_key` for a wrong length or a key that fails the check.
pub fn validate_pq_public_key(pq_public_key: &[u8]) -> Result<()> {
    parse_public_key(pq_public_key).map(drop)
}

/// Encrypts `plaintext` for one device with fresh randomness from the operating system: a new
/// ML-KEM encapsulation and a new nonce on every call.
///
/// # Errors
/// [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) for a bad
/// `pq_public_key` (see [`validate_pq_public_key`]);
/// [`ErrorCode::Internal`](crate::error::ErrorCode::Internal) if the system RNG fails.
pub fn encrypt_for_device(pq_public_key: &[u8], plaintext: &[u8]) -> Result<EncryptedDecision> {
    let public_key = parse_public_key(pq_public_key)?;
    let mut kem_randomness = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(kem_randomness.as_mut())?;
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    encrypt_with(&public_key, plaintext, &kem_randomness, &nonce)
}

/// Deterministic variant of [`encrypt_for_device`]: the ML-KEM encapsulation randomness `m`
/// and the nonce are given. For known-answer tests and reproducible fixtures only.
///
/// Only with the `test-vectors` feature. **Never use it in production**: reusing
/// `kem_randomness` for a key reuses the shared secret, and reusing the pair then reuses an
/// AES-GCM key and nonce, which breaks the confidentiality and integrity of the payloads.
///
/// # Errors
/// [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) for a bad
/// `pq_public_key` (see [`validate_pq_public_key`]).
#[cfg(any(test, feature = "test-vectors"))]
pub fn encrypt_for_device_deterministic(
    pq_public_key: &[u8],
    plaintext: &[u8],
    kem_randomness: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
) -> Result<EncryptedDecision> {
    let public_key = parse_public_key(pq_public_key)?;
    encrypt_with(&public_key, plaintext, kem_randomness, nonce)
}

/// SHA-256 of `bytes` (used for plaintext digests in send results).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Length check and FIPS 203 encapsulation-key check, in that order.
fn parse_public_key(pq_public_key: &[u8]) -> Result<MlKem768PublicKey> {
    let public_key = MlKem768PublicKey::try_from(pq_public_key).map_err(|_| {
        Error::invalid_argument(
            "pq_public_key",
            format_args!(
                "expected {PQ_PUBLIC_KEY_LEN} bytes, got {}",
                pq_public_key.len()
            ),
        )
    })?;
    if !mlkem768::validate_public_key(&public_key) {
        return Err(Error::invalid_argument(
            "pq_public_key",
            "not an ML-KEM-768 encapsulation key: a coefficient is not below q = 3329 \
             (FIPS 203 encapsulation key check)",
        ));
    }
    Ok(public_key)
}

fn encrypt_with(
    public_key: &MlKem768PublicKey,
    plaintext: &[u8],
    kem_randomness: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<EncryptedDecision> {
    // libcrux takes the randomness by value and returns the secret by value: its copies are
    // out of reach, ours are wiped.
    let (kyber_ct, mut returned_secret) = mlkem768::encapsulate(public_key, *kem_randomness);
    let shared_secret = Zeroizing::new(returned_secret);
    returned_secret.zeroize();
    let ciphertext = seal(&shared_secret, nonce, plaintext)?;
    Ok(EncryptedDecision {
        kyber_ct: kyber_ct.as_ref().to_vec(),
        nonce: *nonce,
        ciphertext,
    })
}

/// HKDF-SHA256 over the shared secret, no salt, empty info, 32 bytes: the AES-256-GCM key.
/// Writes into the caller's buffer so that no copy of the key is left behind by a move.
fn derive_aes_key(shared_secret: &[u8; KEY_LEN], aes_key: &mut [u8; KEY_LEN]) -> Result<()> {
    Hkdf::<Sha256>::new(None, shared_secret)
        .expand(&[], aes_key)
        .map_err(|_| Error::internal("HKDF-SHA256 refused a 32-byte output"))
}

fn cipher_for(shared_secret: &[u8; KEY_LEN]) -> Result<Aes256Gcm> {
    let mut aes_key = Zeroizing::new([0u8; KEY_LEN]);
    derive_aes_key(shared_secret, &mut aes_key)?;
    Ok(Aes256Gcm::new((&*aes_key).into()))
}

/// AES-256-GCM seal with the key derived from `shared_secret`; the tag is appended.
fn seal(
    shared_secret: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    cipher_for(shared_secret)?
        .encrypt(nonce.into(), plaintext)
        // Only a plaintext over the AES-GCM limit (about 64 GiB) can fail here.
        .map_err(|_| Error::internal("AES-GCM encryption failed"))
}

/// AES-256-GCM open with the key derived from `shared_secret`.
fn open(
    shared_secret: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ciphertext_and_tag: &[u8],
) -> Result<Vec<u8>> {
    cipher_for(shared_secret)?
        .decrypt(nonce.into(), ciphertext_and_tag)
        .map_err(|_| Error::protocol("AES-GCM authentication failed"))
}

fn fill_random(buffer: &mut [u8]) -> Result<()> {
    getrandom::fill(buffer)
        .map_err(|error| Error::internal(format!("system random number generator failed: {error}")))
}
