//! The relay's TLS material: a CA and a server certificate for `localhost`, `127.0.0.1`, `::1`.
//!
//! The CA can only vouch for loopback names: it carries critical name constraints (DNS
//! `localhost`, IP `127.0.0.0/8` and `::1`), `pathLen 0` (no intermediate CAs) and a validity
//! of [`VALIDITY_DAYS`] days. Whoever reads `ca.key` can still mint certificates, but only for
//! names a client would reach on its own machine. The material is renewed automatically at
//! start when less than [`RENEW_BEFORE_DAYS`] days remain, or when it does not carry these
//! constraints (material from an older relay).
//!
//! The state directory is created `0700` and must belong to the user running the relay. Keys
//! are written `0600` through a temporary file created exclusively (`O_EXCL`, a random name,
//! never through a symlink) and renamed into place; existing files are reused only when they
//! are regular files owned by this user, keys with no group or other permission bits.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};

use crate::error::DevRelayError;

/// File names inside the state directory.
pub(crate) const CA_CERT_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca.key";
pub(crate) const SERVER_CERT_FILE: &str = "server.pem";
pub(crate) const SERVER_KEY_FILE: &str = "server.key";

/// How long new certificates are valid.
pub const VALIDITY_DAYS: i64 = 30;
/// Material with less validity left than this is replaced at start.
pub const RENEW_BEFORE_DAYS: i64 = 7;

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

/// Creates `dir` with mode 0700 (or checks and tightens an existing one).
pub(crate) fn prepare_state_dir(dir: &Path) -> Result<(), DevRelayError> {
    let ctx = |what: &str| format!("{what} state directory {}", dir.display());
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| DevRelayError::io(ctx("creating"), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::symlink_metadata(dir).map_err(|e| DevRelayError::io(ctx("reading"), e))?;
        if !meta.is_dir() {
            return Err(DevRelayError::Tls(format!(
                "{} is not a directory (a symlink is refused)",
                dir.display()
            )));
        }
        if meta.uid() != current_uid() {
            return Err(DevRelayError::Tls(format!(
                "state directory {} belongs to another user (uid {}); refusing to use it",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "state directory was open to other users; setting it to 0700");
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| DevRelayError::io(ctx("restricting"), e))?;
        }
    }
    // Keep the directory out of any git repository it sits in, whatever that repository's own
    // ignore rules say: it holds a CA key.
    let ignore = dir.join(".gitignore");
    if fs::symlink_metadata(&ignore).is_err() {
        write_file(
            &ignore,
            "# written by noxy-devrelay: never commit this directory\n*\n",
            false,
        )?;
    }
    Ok(())
}

#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Reads a file of the state directory without following a symlink, and only when it is a
/// regular file owned by this user (and, for a key, not readable by anyone else).
fn read_checked(path: &Path, private: bool) -> Result<String, String> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != current_uid() {
            return Err(format!("{} belongs to another user", path.display()));
        }
        if private && meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} is readable by other users (mode {:o})",
                path.display(),
                meta.mode() & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// Why existing material cannot be reused, if it cannot.
fn check_existing(dir: &Path) -> Result<TlsMaterial, String> {
    let path = |name: &str| dir.join(name);
    let ca_pem = read_checked(&path(CA_CERT_FILE), false)?;
    read_checked(&path(CA_KEY_FILE), true)?;
    let server_cert_pem = read_checked(&path(SERVER_CERT_FILE), false)?;
    let server_key_pem = read_checked(&path(SERVER_KEY_FILE), true)?;
    KeyPair::from_pem(&server_key_pem)
        .map_err(|e| format!("server.key is not a valid key: {e}"))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let renew_after = now + RENEW_BEFORE_DAYS * 86_400;
    let ca = CertFacts::parse(&ca_pem).map_err(|e| format!("ca.pem: {e}"))?;
    if !ca.loopback_constrained {
        return Err("ca.pem is not constrained to loopback names (made by an older relay)".into());
    }
    let server = CertFacts::parse(&server_cert_pem).map_err(|e| format!("server.pem: {e}"))?;
    for (name, cert) in [(CA_CERT_FILE, &ca), (SERVER_CERT_FILE, &server)] {
        if cert.not_after < renew_after {
            return Err(format!(
                "{name} expires in less than {RENEW_BEFORE_DAYS} days"
            ));
        }
        if cert.not_before > now {
            return Err(format!(
                "{name} is not valid yet (was the clock moved back?)"
            ));
        }
    }
    Ok(TlsMaterial {
        ca_pem,
        server_cert_pem,
        server_key_pem,
        ca_path: path(CA_CERT_FILE),
    })
}

/// What the relay checks in a certificate it finds in the state directory.
#[derive(Debug)]
pub(crate) struct CertFacts {
    /// Unix time of `notAfter`.
    pub not_after: i64,
    /// Unix time of `notBefore`.
    pub not_before: i64,
    /// A CA with `pathLen 0` and critical name constraints.
    pub loopback_constrained: bool,
}

impl CertFacts {
    pub(crate) fn parse(pem: &str) -> Result<CertFacts, String> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("{e}"))?;
        let cert = pem.parse_x509().map_err(|e| format!("{e}"))?;
        let basic = cert.basic_constraints().map_err(|e| format!("{e}"))?;
        let constraints = cert.name_constraints().map_err(|e| format!("{e}"))?;
        let loopback_constrained = matches!(basic, Some(b) if b.value.ca && b.value.path_len_constraint == Some(0))
            && matches!(constraints, Some(c) if c.critical && c.value.permitted_subtrees.is_some());
        Ok(CertFacts {
            not_after: cert.validity().not_after.timestamp(),
            not_before: cert.validity().not_before.timestamp(),
            loopback_constrained,
        })
    }
}

/// Reuses the material in `dir` when it is safe and valid long enough, creates and writes new
/// material otherwise (replacing what was there).
pub(crate) fn load_or_create(dir: &Path) -> Result<TlsMaterial, DevRelayError> {
    prepare_state_dir(dir)?;
    let path = |name: &str| dir.join(name);
    let all_absent = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
        .iter()
        .all(|f| fs::symlink_metadata(path(f)).is_err());
    if !all_absent {
        match check_existing(dir) {
            Ok(material) => return Ok(material),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), reason = %why, "replacing the relay's TLS material: clients must trust the new ca.pem");
            }
        }
    }
    let (material, ca_key_pem) = generate()?;
    // The key first: a ca.pem is never there without the key that goes with it.
    write_file(&path(CA_KEY_FILE), &ca_key_pem, true)?;
    write_file(&path(SERVER_KEY_FILE), &material.server_key_pem, true)?;
    write_file(&path(SERVER_CERT_FILE), &material.server_cert_pem, false)?;
    write_file(&path(CA_CERT_FILE), &material.ca_pem, false)?;
    Ok(TlsMaterial {
        ca_path: path(CA_CERT_FILE),
        ..material
    })
}

/// Generates a fresh CA and server certificate; returns the material and the CA key PEM.
/// `ca_path` is left empty.
pub(crate) fn generate() -> Result<(TlsMaterial, String), DevRelayError> {
    let now = time::OffsetDateTime::now_utc();
    // An hour back for clocks that disagree a little.
    let not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(VALIDITY_DAYS);

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(
                std::net::Ipv6Addr::LOCALHOST.octets(),
                [0xff; 16],
            )),
        ],
        excluded_subtrees: Vec::new(),
    });
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "noxy-devrelay development CA (loopback only)",
    );
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

/// Writes `contents` to `path` atomically: a new temporary file beside it, created
/// exclusively with a random name and mode 0600 (0644 for public files), then renamed over
/// `path`. Never writes through an existing file or symlink.
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), DevRelayError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".noxy-tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(if private {
            0o600
        } else {
            0o644
        }));
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| DevRelayError::io(format!("creating a file in {}", dir.display()), e))?;
    tmp.write_all(contents.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| DevRelayError::io(format!("writing {}", tmp.path().display()), e))?;
    tmp.persist(path)
        .map_err(|e| DevRelayError::io(format!("renaming to {}", path.display()), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ca_is_constrained_to_loopback_and_short_lived() {
        let (material, _) = generate().unwrap();
        let ca = CertFacts::parse(&material.ca_pem).unwrap();
        assert!(ca.loopback_constrained);
        let days = (ca.not_after - ca.not_before) / 86_400;
        assert!(
            (VALIDITY_DAYS - 1..=VALIDITY_DAYS).contains(&days),
            "{days}"
        );
        let server = CertFacts::parse(&material.server_cert_pem).unwrap();
        assert!(
            !server.loopback_constrained,
            "the server certificate is no CA"
        );
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn material_is_reused_only_when_safe_and_constrained() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let first = load_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(SERVER_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o644);
        assert!(fs::read_to_string(dir.join(".gitignore"))
            .unwrap()
            .contains('*'));

        // Safe and valid: reused.
        assert_eq!(load_or_create(&dir).unwrap().ca_pem, first.ca_pem);

        // A directory others can read is tightened, and the material still reused.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(load_or_create(&dir).unwrap().ca_pem, first.ca_pem);
        assert_eq!(mode(&dir), 0o700);

        // A key readable by others may have leaked: new material.
        fs::set_permissions(dir.join(CA_KEY_FILE), fs::Permissions::from_mode(0o640)).unwrap();
        let second = load_or_create(&dir).unwrap();
        assert_ne!(second.ca_pem, first.ca_pem);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);

        // A symlink planted in place of a key is not followed: replaced, target untouched.
        let target = root.path().join("elsewhere");
        fs::write(&target, "not a key").unwrap();
        fs::remove_file(dir.join(SERVER_KEY_FILE)).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(SERVER_KEY_FILE)).unwrap();
        let third = load_or_create(&dir).unwrap();
        assert_ne!(third.ca_pem, second.ca_pem);
        assert_eq!(fs::read_to_string(&target).unwrap(), "not a key");
        assert!(fs::symlink_metadata(dir.join(SERVER_KEY_FILE))
            .unwrap()
            .is_file());

        // Material of an older relay (an unconstrained CA valid for decades) is replaced.
        let mut old = CertificateParams::new(Vec::<String>::new()).unwrap();
        old.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        old.not_before = rcgen::date_time_ymd(2024, 1, 1);
        old.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let old_key = KeyPair::generate().unwrap();
        let old_ca = old.self_signed(&old_key).unwrap().pem();
        write_file(&dir.join(CA_CERT_FILE), &old_ca, false).unwrap();
        assert!(!CertFacts::parse(&old_ca).unwrap().loopback_constrained);
        let fourth = load_or_create(&dir).unwrap();
        assert_ne!(fourth.ca_pem, old_ca);
        assert!(
            CertFacts::parse(&fourth.ca_pem)
                .unwrap()
                .loopback_constrained
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_state_directory_of_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        fs::create_dir(&dir).unwrap();
        // Only root can hand a directory to another user; elsewhere there is nothing to test.
        if std::os::unix::fs::chown(&dir, Some(current_uid() + 4242), None).is_err() {
            return;
        }
        let err = load_or_create(&dir).err().expect("refused");
        assert!(err.to_string().contains("another user"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_written_exclusively_and_never_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        fs::write(&target, "keep").unwrap();
        let link = root.path().join("key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_file(&link, "secret", true).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&link).unwrap(), "secret");
        assert_eq!(mode(&link), 0o600);
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // An existing file with a loose mode is replaced by one with the right mode.
        let loose = root.path().join("loose");
        fs::write(&loose, "old").unwrap();
        write_file(&loose, "new", true).unwrap();
        assert_eq!(mode(&loose), 0o600);
    }
}
