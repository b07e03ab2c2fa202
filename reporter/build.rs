// `sqlx::migrate!` embeds ../migrations at compile time; rebuild when they
// change so the binary never carries stale migrations.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
