//! `bottle info AGENT`: the resolved plan and the file that set each value.

use crate::cli::InfoArgs;
use crate::exit::Exit;

pub fn run(args: &InfoArgs) -> Exit {
    let resolved = super::plan::resolve(Some(&args.agent), &[]).and_then(|plan| {
        let routes = super::plan::printed_routes(&plan)?;
        Ok((plan, routes))
    });
    let (plan, routes) = match resolved {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("{message}");
            return Exit::Failure;
        }
    };
    if args.json {
        let info = super::plan::Info {
            plan: &plan,
            launch_routes: &routes,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&info).expect("a plan serializes to JSON")
        );
    } else {
        print!("{}", super::plan::render(&plan, &routes));
        let (backend, runtime) = super::plan::backend_summary(args.backend);
        println!("{}", super::plan::backend_line(backend, runtime.as_deref()));
    }
    Exit::Success
}
