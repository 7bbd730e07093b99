//! Stand-in for `bottle __pre-receive` in this crate's tests: the pre-receive hook that
//! forwards a push to the gate.

fn main() -> std::process::ExitCode {
    bottle_gitgate::pre_receive_main()
}
