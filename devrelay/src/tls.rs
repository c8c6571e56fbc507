//! The relay's TLS material: a CA and a server certificate for `localhost`, `127.0.0.1`, `::1`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::DevRelayError;

/// File names inside the state directory.
pub(crate) const CA_CERT_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca.key";
pub(crate) const SERVER_CERT_FILE: &str = "server.pem";
pub(crate) const SERVER_KEY_FILE: &str = "server.key";

/// The PEM texts the relay serves with.
#[derive(Clone)]
pub(crate) struct TlsMaterial {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Where `ca.pem` is.
    pub ca_path: PathBuf,
}

fn tls_err(e: impl std::fmt::Display) -> DevRelayError {
    DevRelayError::Tls(e.to_string())
}

/// Reuses the material in `dir` when all four files are there, creates and writes it otherwise.
pub(crate) fn load_or_create(dir: &Path) -> Result<TlsMaterial, DevRelayError> {
    fs::create_dir_all(dir)
        .map_err(|e| DevRelayError::io(format!("creating state directory {}", dir.display()), e))?;
    let path = |name: &str| dir.join(name);
    let all_present = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
        .iter()
        .all(|f| path(f).is_file());
    if all_present {
        let read = |name: &str| {
            fs::read_to_string(path(name))
                .map_err(|e| DevRelayError::io(format!("reading {}", path(name).display()), e))
        };
        let material = TlsMaterial {
            ca_pem: read(CA_CERT_FILE)?,
            server_cert_pem: read(SERVER_CERT_FILE)?,
            server_key_pem: read(SERVER_KEY_FILE)?,
            ca_path: path(CA_CERT_FILE),
        };
        // Fail early on garbage rather than at the first handshake.
        KeyPair::from_pem(&material.server_key_pem).map_err(|e| {
            tls_err(format!(
                "{} is not a valid key ({e}); delete the state directory's TLS files to regenerate them",
                path(SERVER_KEY_FILE).display()
            ))
        })?;
        return Ok(material);
    }
    let (material, ca_key_pem) = generate()?;
    write_file(&path(CA_CERT_FILE), &material.ca_pem, false)?;
    write_file(&path(CA_KEY_FILE), &ca_key_pem, true)?;
    write_file(&path(SERVER_CERT_FILE), &material.server_cert_pem, false)?;
    write_file(&path(SERVER_KEY_FILE), &material.server_key_pem, true)?;
    Ok(TlsMaterial {
        ca_path: path(CA_CERT_FILE),
        ..material
    })
}

/// Generates a fresh CA and server certificate; returns the material and the CA key PEM.
/// `ca_path` is left empty.
pub(crate) fn generate() -> Result<(TlsMaterial, String), DevRelayError> {
    let not_before = rcgen::date_time_ymd(2024, 1, 1);
    let not_after = rcgen::date_time_ymd(2049, 12, 31);

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "noxy-devrelay development CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "noxy-devrelay");
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(tls_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let server_key = KeyPair::generate().map_err(tls_err)?;
    let server_cert = params.signed_by(&server_key, &issuer).map_err(tls_err)?;

    Ok((
        TlsMaterial {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            ca_path: PathBuf::new(),
        },
        ca_key_pem,
    ))
}

/// Writes `contents` to `path` through a temporary file and a rename; keys are private (0600).
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), DevRelayError> {
    let tmp = path.with_extension("tmp");
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(&tmp)
        .map_err(|e| DevRelayError::io(ctx("creating"), e))?;
    file.write_all(contents.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| DevRelayError::io(ctx("writing"), e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        DevRelayError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}
