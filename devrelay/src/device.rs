//! The device side of the encryption: ML-KEM-768 key pairs and decryption of a decision,
//! exactly as a real Noxy device does it (decapsulate, HKDF-SHA256, AES-256-GCM, JSON object).
//!
//! This uses the RustCrypto `ml-kem` crate, an implementation independent of the library's,
//! so that a wrong KEM or key derivation anywhere shows up as a decrypt failure.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit as _};
use hkdf::Hkdf;
use ml_kem::kem::{Decapsulate, Kem, KeyExport};
use ml_kem::MlKem768;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Length of an ML-KEM-768 encapsulation (public) key.
pub const PQ_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext (`kyber_ct`).
pub const KYBER_CT_LEN: usize = 1088;
/// Length of the AES-256-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-256-GCM tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;

/// The decapsulation (secret) key of a simulated device.
pub(crate) type SecretKey = ml_kem::ml_kem_768::DecapsulationKey;

/// Generates an ML-KEM-768 key pair: the secret key and the 1184-byte public key.
pub(crate) fn generate_keypair() -> (SecretKey, Vec<u8>) {
    let (dk, ek) = MlKem768::generate_keypair();
    let public = ek.to_bytes().to_vec();
    (dk, public)
}

/// The 64-byte seed (`d || z`, FIPS 203) a secret key was generated from, to store it.
pub(crate) fn secret_seed(dk: &SecretKey) -> Option<Zeroizing<Vec<u8>>> {
    let mut seed = dk.to_seed()?;
    let bytes = Zeroizing::new(seed.to_vec());
    seed.as_mut_slice().zeroize();
    Some(bytes)
}

/// The secret key of a stored seed, and its 1184-byte public key.
pub(crate) fn secret_from_seed(bytes: &[u8]) -> Result<(SecretKey, Vec<u8>), String> {
    let mut seed = ml_kem::Seed::try_from(bytes)
        .map_err(|_| format!("a secret seed must be 64 bytes, got {}", bytes.len()))?;
    let dk = SecretKey::from_seed(seed);
    seed.as_mut_slice().zeroize();
    let public = dk.encapsulation_key().to_bytes().to_vec();
    Ok((dk, public))
}

/// Checks that `bytes` is a valid ML-KEM-768 encapsulation key.
pub(crate) fn validate_public_key(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != PQ_PUBLIC_KEY_LEN {
        return Err(format!(
            "pq_public_key must be {PQ_PUBLIC_KEY_LEN} bytes (ML-KEM-768), got {}",
            bytes.len()
        ));
    }
    let key = ml_kem::array::Array::try_from(bytes).map_err(|_| "bad key length".to_string())?;
    ml_kem::ml_kem_768::EncapsulationKey::new(&key)
        .map(|_| ())
        .map_err(|_| "pq_public_key is not a valid ML-KEM-768 encapsulation key".to_string())
}

/// Decrypts one delivered decision and checks that it is a JSON object; returns the plaintext
/// (wiped when dropped, on every path).
pub(crate) fn decrypt(
    dk: &SecretKey,
    kyber_ct: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let ct = ml_kem::ml_kem_768::Ciphertext::try_from(kyber_ct)
        .map_err(|_| "kyber_ct is not 1088 bytes")?;
    let mut shared = dk.decapsulate(&ct);
    let hk = Hkdf::<Sha256>::new(None, shared.as_slice());
    let mut key = [0u8; 32];
    let expanded = hk.expand(&[], &mut key);
    shared.as_mut_slice().zeroize();
    expanded.map_err(|_| "HKDF expansion failed")?;
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| "bad AES key length");
    key.zeroize();
    let cipher = cipher?;
    let nonce = aes_gcm::Nonce::try_from(nonce).map_err(|_| "nonce is not 12 bytes")?;
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(&nonce, ciphertext)
            .map_err(|_| "AES-256-GCM authentication failed")?,
    );
    match top_level(&plaintext) {
        Ok(TopLevel::Object) => Ok(plaintext),
        Ok(TopLevel::Other) => Err("payload is JSON but not an object"),
        Err(_) => Err("payload is not JSON"),
    }
}

/// The shape of a JSON document's top level.
#[derive(Debug, PartialEq, Eq)]
enum TopLevel {
    Object,
    Other,
}

/// Validates the whole document without copying any of its strings (which would be unwiped
/// copies of the plaintext), then reads the shape off its first significant byte. (A serde
/// visitor cannot tell: with serde_json's `arbitrary_precision`, which the workspace enables,
/// a bare number arrives as a map.)
fn top_level(json: &[u8]) -> Result<TopLevel, serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json)?;
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(TopLevel::Object),
        _ => Ok(TopLevel::Other),
    }
}

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes standing in for a device's Ed25519 public key.
pub(crate) fn random_classical_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    // getrandom only fails when the OS has no randomness at all; a zero key is harmless here.
    let _ = getrandom::fill(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_object_is_a_decision() {
        let shape = |text: &str| top_level(text.as_bytes());
        assert!(matches!(
            shape(r#"{"a":[1,{"b":null}],"big":123456789012345678901234567890}"#),
            Ok(TopLevel::Object)
        ));
        for other in ["[1,2]", "\"s\"", "1", "-1", "1.5", "true", "null"] {
            assert!(matches!(shape(other), Ok(TopLevel::Other)), "{other}");
        }
        for bad in ["", "{", "{\"a\":}", "{} {}", "nope"] {
            assert!(shape(bad).is_err(), "{bad}");
        }
    }
}
