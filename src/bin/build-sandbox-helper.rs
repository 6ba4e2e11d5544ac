//! The `native` runner's helper: started by the runner for every build script,
//! with the script's confinement as JSON on stdin, it confines itself and
//! becomes the script (see `build_sandbox::runner::native`).
//!
//! It is a program of its own, installed next to the program that embeds the
//! runner, so that it starts fast and single-threaded.

fn main() {
    build_sandbox::runner::native::helper_main()
}
