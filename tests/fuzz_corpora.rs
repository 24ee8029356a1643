//! Replays the kept fuzz corpora (`fuzz/corpus/<target>/`, the inputs that found new paths)
//! through the same target bodies the fuzzer runs, on the stable toolchain: a crash the fuzzer
//! found, once its input is kept there, stays a regression test in `cargo test`.

// Each fuzz target is its own binary, so the snapshot and delta bodies each include
// `fuzz/bodies/resign.rs`; here both bodies live in one crate.
#![allow(clippy::duplicate_mod)]

use std::path::Path;

macro_rules! corpus_tests {
    ($($target:ident => $body:literal),* $(,)?) => {$(
        #[test]
        fn $target() {
            #[path = $body]
            mod body;
            replay(stringify!($target), body::run);
        }
    )*};
}

corpus_tests!(
    config => "../fuzz/bodies/config.rs",
    decision => "../fuzz/bodies/decision.rs",
    delta => "../fuzz/bodies/delta.rs",
    feed_event => "../fuzz/bodies/feed_event.rs",
    introspection => "../fuzz/bodies/introspection.rs",
    jwks => "../fuzz/bodies/jwks.rs",
    request => "../fuzz/bodies/request.rs",
    revocation_list => "../fuzz/bodies/revocation_list.rs",
    shared_value => "../fuzz/bodies/shared_value.rs",
    snapshot => "../fuzz/bodies/snapshot.rs",
    token => "../fuzz/bodies/token.rs",
);

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "{}: the corpus is empty", dir.display());
    println!("{target}: {count} inputs replayed");
}
