//! The device side of the per-device encryption, for simulators, tests and hosts that act as a
//! device: ML-KEM-768 key pairs, decapsulation, HKDF-SHA256 and AES-256-GCM open.

use std::fmt;

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use zeroize::{Zeroize, Zeroizing};

use super::{fill_random, open, EncryptedDecision, KYBER_CT_LEN, PQ_SECRET_KEY_LEN, TAG_LEN};
use crate::error::{Error, Result};

/// A device's ML-KEM-768 key pair. The secret key is wiped when the pair is dropped.
pub struct DeviceKeyPair {
    secret_key: WipedSecretKey,
    public_key: MlKem768PublicKey,
}

impl DeviceKeyPair {
    /// Generates a key pair from 64 bytes of system randomness.
    ///
    /// # Errors
    /// [`ErrorCode::Internal`](crate::error::ErrorCode::Internal) if the system RNG fails.
    pub fn generate() -> Result<DeviceKeyPair> {
        let mut seed = Zeroizing::new([0u8; 64]);
        fill_random(seed.as_mut())?;
        Ok(DeviceKeyPair::from_full_seed(&seed))
    }

    /// The key pair FIPS 203 `ML-KEM.KeyGen_internal(d, z)` derives: deterministic, for tests
    /// and reproducible fixtures only (the `test-vectors` feature). `d` and `z` must be secret
    /// and uniformly random for a real key.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn from_seed(d: &[u8; 32], z: &[u8; 32]) -> DeviceKeyPair {
        let mut seed = Zeroizing::new([0u8; 64]);
        seed[..32].copy_from_slice(d);
        seed[32..].copy_from_slice(z);
        DeviceKeyPair::from_full_seed(&seed)
    }

    /// `seed` is `d ‖ z`, the layout libcrux expects.
    fn from_full_seed(seed: &[u8; 64]) -> DeviceKeyPair {
        // libcrux takes the seed by value; that copy is out of our reach.
        let (private_key, public_key) = mlkem768::generate_key_pair(*seed).into_parts();
        DeviceKeyPair {
            secret_key: WipedSecretKey(private_key),
            public_key,
        }
    }

    /// The encapsulation key (`pq_public_key`), [`PQ_PUBLIC_KEY_LEN`](super::PQ_PUBLIC_KEY_LEN)
    /// bytes.
    pub fn public_key(&self) -> &[u8] {
        self.public_key.as_ref()
    }

    /// The decapsulation key in the FIPS 203 format, [`PQ_SECRET_KEY_LEN`] bytes.
    pub fn secret_key(&self) -> &[u8] {
        self.secret_key.0.as_ref()
    }

    /// Decrypts one device's copy of a decision: decapsulates `kyber_ct`, derives the AES key
    /// with HKDF-SHA256 and opens the AES-256-GCM ciphertext.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) naming the
    /// field for a `kyber_ct` that is not [`KYBER_CT_LEN`] bytes or a `ciphertext` shorter than
    /// the tag; [`ErrorCode::Protocol`](crate::error::ErrorCode::Protocol) when authentication
    /// fails (tampered data, or a decision encrypted for another key).
    pub fn decrypt(&self, encrypted: &EncryptedDecision) -> Result<Vec<u8>> {
        let kyber_ct = check_sizes(encrypted)?;
        decrypt_with(&self.secret_key.0, &kyber_ct, encrypted)
    }
}

impl fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeyPair")
            .field(
                "public_key",
                &format_args!("{} bytes", self.public_key().len()),
            )
            .finish_non_exhaustive()
    }
}

/// Decrypts one device's copy of a decision with a secret key given as bytes (FIPS 203
/// decapsulation-key format). The key is checked (size and the FIPS 203 hash check) and its
/// parsed copy is wiped afterwards.
///
/// # Errors
/// [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) naming the field
/// for a `secret_key` that is not [`PQ_SECRET_KEY_LEN`] bytes or fails the hash check, a
/// `kyber_ct` that is not [`KYBER_CT_LEN`] bytes, or a `ciphertext` shorter than the tag;
/// [`ErrorCode::Protocol`](crate::error::ErrorCode::Protocol) when authentication fails.
pub fn decrypt_with_secret_key(
    secret_key: &[u8],
    encrypted: &EncryptedDecision,
) -> Result<Vec<u8>> {
    let secret_key = MlKem768PrivateKey::try_from(secret_key)
        .map(WipedSecretKey)
        .map_err(|_| {
            Error::invalid_argument(
                "secret_key",
                format_args!(
                    "expected {PQ_SECRET_KEY_LEN} bytes, got {}",
                    secret_key.len()
                ),
            )
        })?;
    let kyber_ct = check_sizes(encrypted)?;
    // FIPS 203 §7.3 hash check: the H(ek) stored in the key matches its ek.
    if !mlkem768::validate_private_key(&secret_key.0, &kyber_ct) {
        return Err(Error::invalid_argument(
            "secret_key",
            "not an ML-KEM-768 decapsulation key: its H(ek) does not match its ek \
             (FIPS 203 decapsulation key check)",
        ));
    }
    decrypt_with(&secret_key.0, &kyber_ct, encrypted)
}

/// A libcrux secret key that is overwritten with zeros when dropped.
struct WipedSecretKey(MlKem768PrivateKey);

impl Drop for WipedSecretKey {
    fn drop(&mut self) {
        self.0[0..].zeroize();
    }
}

fn check_sizes(encrypted: &EncryptedDecision) -> Result<MlKem768Ciphertext> {
    let kyber_ct = MlKem768Ciphertext::try_from(encrypted.kyber_ct.as_slice()).map_err(|_| {
        Error::invalid_argument(
            "kyber_ct",
            format_args!(
                "expected {KYBER_CT_LEN} bytes, got {}",
                encrypted.kyber_ct.len()
            ),
        )
    })?;
    if encrypted.ciphertext.len() < TAG_LEN {
        return Err(Error::invalid_argument(
            "ciphertext",
            format_args!(
                "expected at least the {TAG_LEN}-byte tag, got {} bytes",
                encrypted.ciphertext.len()
            ),
        ));
    }
    Ok(kyber_ct)
}

fn decrypt_with(
    private_key: &MlKem768PrivateKey,
    kyber_ct: &MlKem768Ciphertext,
    encrypted: &EncryptedDecision,
) -> Result<Vec<u8>> {
    // A tampered kyber_ct does not fail here: ML-KEM's implicit rejection yields an unrelated
    // secret, and the AES-GCM tag check then fails.
    let mut returned_secret = mlkem768::decapsulate(private_key, kyber_ct);
    let shared_secret = Zeroizing::new(returned_secret);
    returned_secret.zeroize();
    open(&shared_secret, &encrypted.nonce, &encrypted.ciphertext)
}
