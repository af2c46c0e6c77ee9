//! The firmware's build time, the kit's first time floor (`src/clock.rs`):
//! `SOURCE_DATE_EPOCH` when set (reproducible builds, `image/build`), else
//! the time of this build script's run.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH={v:?} is not unix seconds")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let code = format!(
        "/// The build time (unix seconds): the kit's time is never below it.\npub const BUILD_TIME: u64 = {secs};\n"
    );
    std::fs::write(std::path::Path::new(&out).join("build_time.rs"), code)
        .expect("writing build_time.rs");
}
