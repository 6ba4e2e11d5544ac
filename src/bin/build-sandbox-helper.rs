//! The `native` runner's helper: started once by the runner, with a control
//! socket as stdin, it forks a run for each build script, which confines
//! itself and becomes the script (see `build_sandbox::runner::native`).
//!
//! It is a program of its own, installed next to the program that embeds the
//! runner, so that it is single-threaded and every run is a fresh fork of it.

fn main() {
    build_sandbox::runner::native::helper_main()
}
