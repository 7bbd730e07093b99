//! `bottle info AGENT`: the resolved plan and the file that set each value.

use crate::cli::InfoArgs;
use crate::exit::Exit;

pub fn run(args: &InfoArgs) -> Exit {
    let plan = match super::plan::resolve(Some(&args.agent), &[]) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("{message}");
            return Exit::Failure;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("a plan serializes to JSON")
        );
    } else {
        print!("{}", super::plan::render(&plan));
        let (backend, runtime) = super::plan::backend_summary(args.backend);
        println!("{}", super::plan::backend_line(backend, runtime.as_deref()));
    }
    Exit::Success
}
