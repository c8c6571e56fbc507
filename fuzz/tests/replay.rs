//! Replays every committed corpus file through the same target functions the libFuzzer
//! binaries run, on the stable toolchain: `cargo test --no-default-features` in `fuzz/`.

use std::path::Path;

#[test]
fn every_corpus_file_replays_without_a_contract_violation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for (name, run) in noxy_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seed", dir.display());
        for file in &files {
            let data = std::fs::read(file).expect("a corpus file");
            eprintln!("{name}: {}", file.display());
            run(&data);
        }
        println!("{name}: {} inputs replayed", files.len());
        total += files.len();
    }
    assert!(total > 0);
}
