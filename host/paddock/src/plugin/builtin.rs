//! The plugins shipped inside the binary (built by the build script from
//! `plugins/` for `wasm32-wasip2`).

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// A plugin embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The file name it would have in the plugins directory; a file there
    /// with a plugin of the same name replaces it.
    pub file_name: &'static str,
    pub wasm: &'static [u8],
}

pub fn builtins() -> impl Iterator<Item = Builtin> {
    BUILTIN_PLUGINS
        .iter()
        .map(|&(file_name, wasm)| Builtin { file_name, wasm })
}
