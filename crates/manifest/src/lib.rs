//! Bottle and agent files.

pub mod frontmatter;
mod yaml;
