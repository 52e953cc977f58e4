//! Module import cycles inside one crate: parses the crate root and every module file it
//! declares (`mod x;`, following the compiler's file layout) with `syn`, collects each
//! reference to a top-level module (`use crate::x…`, `crate::x::…` paths in code and in macro
//! arguments, `super::x` that climbs to the crate root), skipping `#[cfg(test)]` items, and
//! finds the strongly connected components of the top-level module graph. The crate root
//! itself is not a node; each binary is a crate root of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};

use crate::graph::Graph;
use crate::metadata::Workspace;
use crate::report::{Finding, Report};

/// One reference from a file inside top-level module `from` to top-level module `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModuleRef {
    /// Top-level module the referring file belongs to.
    pub from: String,
    /// Top-level module referred to.
    pub to: String,
    /// The referring file.
    pub file: PathBuf,
    /// 1-based line of the reference.
    pub line: usize,
    /// The path as written, e.g. `crate::generic_service::command_context`.
    pub path: String,
}

/// The top-level module graph of one crate root.
#[derive(Debug, Clone, Default)]
pub struct ModuleGraph {
    /// Top-level module name -> the file declaring its contents.
    pub modules: BTreeMap<String, PathBuf>,
    /// Every reference between two different top-level modules.
    pub refs: Vec<ModuleRef>,
    /// Problems that did not stop the analysis (a declared module file not found).
    pub notes: Vec<String>,
}

impl ModuleGraph {
    /// Parses the crate whose root file is `root_file`.
    pub fn load(root_file: &Path) -> Result<ModuleGraph> {
        let mut graph = ModuleGraph::default();
        let mut raw_refs = Vec::new();
        let child_dir = root_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut queue = vec![(root_file.to_path_buf(), Vec::<String>::new(), child_dir)];
        while let Some((file, module_path, child_dir)) = queue.pop() {
            let source =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let ast =
                syn::parse_file(&source).with_context(|| format!("parsing {}", file.display()))?;
            let mut visitor = FileVisitor {
                file: &file,
                module_path: module_path.clone(),
                inline: Vec::new(),
                refs: Vec::new(),
                mods: Vec::new(),
            };
            visitor.visit_file(&ast);
            raw_refs.append(&mut visitor.refs);
            for decl in visitor.mods {
                if decl.module_path.len() == 1 && decl.inline_body {
                    graph
                        .modules
                        .insert(decl.module_path[0].clone(), file.clone());
                }
                if decl.inline_body {
                    continue;
                }
                let base = child_dir.join(decl.inline.iter().collect::<PathBuf>());
                let name = decl.module_path.last().cloned().unwrap_or_default();
                let candidates = match &decl.path_attr {
                    Some(p) if decl.inline.is_empty() => {
                        vec![file.parent().unwrap_or(Path::new("")).join(p)]
                    }
                    Some(p) => vec![base.join(p)],
                    None => vec![
                        base.join(format!("{name}.rs")),
                        base.join(&name).join("mod.rs"),
                    ],
                };
                match candidates.into_iter().find(|c| c.is_file()) {
                    Some(found) => {
                        let next_dir = if decl.path_attr.is_some() || found.ends_with("mod.rs") {
                            found.parent().map(Path::to_path_buf).unwrap_or_default()
                        } else {
                            base.join(&name)
                        };
                        if decl.module_path.len() == 1 {
                            graph.modules.insert(name.clone(), found.clone());
                        }
                        queue.push((found, decl.module_path, next_dir));
                    }
                    None => graph.notes.push(format!(
                        "{}: file of `mod {name};` not found",
                        file.display()
                    )),
                }
            }
        }
        let mut refs: Vec<ModuleRef> = raw_refs
            .into_iter()
            .filter(|r| r.from != r.to && graph.modules.contains_key(&r.to))
            .collect();
        refs.sort();
        refs.dedup();
        graph.refs = refs;
        Ok(graph)
    }

    /// The directed graph of top-level modules.
    pub fn graph(&self) -> Graph {
        let mut graph = Graph::default();
        for name in self.modules.keys() {
            graph.add_node(name);
        }
        for r in &self.refs {
            graph.add_edge(&r.from, &r.to);
        }
        graph
    }

    /// One finding per cycle, keyed `cycle <label>: <sorted members>`.
    pub fn cycle_findings(&self, label: &str, workspace: &Workspace) -> Vec<Finding> {
        let graph = self.graph();
        graph
            .cycles()
            .into_iter()
            .map(|members| {
                let within: BTreeSet<&str> = members.iter().map(String::as_str).collect();
                let example = graph
                    .shortest_cycle(&members[0], &within)
                    .map(|mut path| {
                        path.push(members[0].clone());
                        path.join(" -> ")
                    })
                    .unwrap_or_default();
                let mut detail = format!(
                    "{} top-level modules import each other, e.g. {example}; \
                     break one of these imports:",
                    members.len()
                );
                let mut edge = None;
                let mut place = None;
                for r in self
                    .refs
                    .iter()
                    .filter(|r| within.contains(r.from.as_str()) && within.contains(r.to.as_str()))
                {
                    if edge != Some((&r.from, &r.to)) {
                        edge = Some((&r.from, &r.to));
                        place = None;
                        detail.push_str(&format!("\n  {} -> {}:", r.from, r.to));
                    }
                    // Several paths on one line (a `use` group): one line of the report.
                    if place == Some((&r.file, r.line)) {
                        detail.push_str(&format!(", {}", r.path));
                    } else {
                        place = Some((&r.file, r.line));
                        detail.push_str(&format!(
                            "\n    {}:{}  {}",
                            workspace.relative(&r.file),
                            r.line,
                            r.path
                        ));
                    }
                }
                Finding {
                    key: format!("cycle {label}: {}", members.join(", ")),
                    detail,
                }
            })
            .collect()
    }
}

/// Looks for module cycles in every lib and bin target of every workspace member.
pub fn check_modules(workspace: &Workspace, report: &mut Report) -> Result<()> {
    for package in &workspace.packages {
        let has_lib = package.targets.iter().any(|t| t.is_lib);
        for target in &package.targets {
            let label = if target.is_lib || (!has_lib && target.name == package.name) {
                package.name.clone()
            } else {
                format!("{} (bin {})", package.name, target.name)
            };
            let graph = ModuleGraph::load(&target.src_path)
                .with_context(|| format!("module graph of {label}"))?;
            report
                .findings
                .extend(graph.cycle_findings(&label, workspace));
            report.notes.extend(graph.notes);
        }
    }
    Ok(())
}

/// A `mod` item found in a file.
struct ModDecl {
    /// Full module path from the crate root.
    module_path: Vec<String>,
    /// Enclosing inline modules inside the file (they add directories).
    inline: Vec<String>,
    /// `#[path = "..."]`, if any.
    path_attr: Option<String>,
    /// `mod x { ... }` rather than `mod x;`.
    inline_body: bool,
}

struct FileVisitor<'a> {
    file: &'a Path,
    /// Module path of the current position (file's module plus enclosing inline modules).
    module_path: Vec<String>,
    /// Enclosing inline modules inside this file.
    inline: Vec<String>,
    refs: Vec<ModuleRef>,
    mods: Vec<ModDecl>,
}

impl FileVisitor<'_> {
    /// Records `segments` (as written, with their spans) if they name a top-level module
    /// other than the current one. References from the crate root are not edges.
    fn reference(&mut self, segments: &[(String, Span)]) {
        let Some(from) = self.module_path.first() else {
            return;
        };
        let names: Vec<&str> = segments.iter().map(|(s, _)| s.as_str()).collect();
        let Some(index) = top_level_index(&names, self.module_path.len()) else {
            return;
        };
        let (to, span) = &segments[index];
        if to == from || matches!(to.as_str(), "self" | "super" | "crate" | "*") {
            return;
        }
        self.refs.push(ModuleRef {
            from: from.clone(),
            to: to.clone(),
            file: self.file.to_path_buf(),
            line: span.start().line,
            path: names.join("::"),
        });
    }

    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<(String, Span)>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push((p.ident.to_string(), p.ident.span()));
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push((n.ident.to_string(), n.ident.span()));
                self.reference(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push((r.ident.to_string(), r.ident.span()));
                self.reference(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                prefix.push(("*".to_owned(), g.star_token.spans[0]));
                self.reference(prefix);
                prefix.pop();
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(item, prefix);
                }
            }
        }
    }

    /// `crate::x::…`, `$crate::x::…` and `super::…` paths inside macro arguments.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(ident)
                    if matches!(ident.to_string().as_str(), "crate" | "super" | "self")
                        && !follows_path_separator(&tokens, i) =>
                {
                    let mut segments = vec![(ident.to_string(), ident.span())];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push((next.to_string(), next.span()));
                        j += 3;
                    }
                    self.reference(&segments);
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Whether the token before `i` is the second `:` of a `::` (so `i` is not a path start).
fn follows_path_separator(tokens: &[TokenTree], i: usize) -> bool {
    i >= 2
        && matches!((&tokens[i - 2], &tokens[i - 1]),
            (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == ':' && b.as_char() == ':')
}

/// For a path written at module depth `depth` (0 = crate root), the index of the segment
/// naming a top-level module, if the path leads through the crate root: `crate::x`,
/// `super::…::x` climbing exactly to the root, or `self::x` at the root.
fn top_level_index(names: &[&str], depth: usize) -> Option<usize> {
    match *names.first()? {
        "crate" => (names.len() > 1).then_some(1),
        "super" => {
            let ups = names.iter().take_while(|s| **s == "super").count();
            (ups == depth && names.len() > ups).then_some(ups)
        }
        "self" if depth == 0 => (names.len() > 1).then_some(1),
        "self" if names.get(1) == Some(&"super") => {
            top_level_index(&names[1..], depth).map(|i| i + 1)
        }
        _ => None,
    }
}

/// `#[cfg(test)]`, or `#[cfg(all(.., test, ..))]`.
fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("cfg") {
            return false;
        }
        match attr.parse_args::<syn::Meta>() {
            Ok(syn::Meta::Path(p)) => p.is_ident("test"),
            Ok(syn::Meta::List(list)) if list.path.is_ident("all") => list
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
                )
                .map(|metas| {
                    metas
                        .iter()
                        .any(|m| matches!(m, syn::Meta::Path(p) if p.is_ident("test")))
                })
                .unwrap_or(false),
            _ => false,
        }
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_cfg_test(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_cfg_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => return visit::visit_trait_item(self, item),
        };
        if !is_cfg_test(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let name = item.ident.to_string();
        let mut module_path = self.module_path.clone();
        module_path.push(name.clone());
        let path_attr = item.attrs.iter().find_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        self.mods.push(ModDecl {
            module_path: module_path.clone(),
            inline: self.inline.clone(),
            path_attr,
            inline_body: item.content.is_some(),
        });
        if item.content.is_some() {
            let outer = std::mem::replace(&mut self.module_path, module_path);
            self.inline.push(name);
            visit::visit_item_mod(self, item);
            self.inline.pop();
            self.module_path = outer;
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, &mut Vec::new());
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<(String, Span)> = path
                .segments
                .iter()
                .map(|s| (s.ident.to_string(), s.ident.span()))
                .collect();
            self.reference(&segments);
        }
        visit::visit_path(self, path);
    }

    /// Attribute arguments are tokens too: `#[arg(default_value = crate::x::DEFAULT)]`.
    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        self.tokens(list.tokens.clone());
        visit::visit_meta_list(self, list);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` under a fresh temporary directory named after `name`.
    fn crate_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("layers-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    fn edges(graph: &ModuleGraph) -> Vec<(String, String, String, usize)> {
        graph
            .refs
            .iter()
            .map(|r| {
                let file = r.file.file_name().unwrap().to_string_lossy().into_owned();
                (r.from.clone(), r.to.clone(), file, r.line)
            })
            .collect()
    }

    #[test]
    fn resolves_top_level_paths() {
        assert_eq!(top_level_index(&["crate", "a", "B"], 3), Some(1));
        assert_eq!(top_level_index(&["super", "a"], 1), Some(1));
        assert_eq!(top_level_index(&["super", "a"], 2), None);
        assert_eq!(top_level_index(&["super", "super", "a"], 2), Some(2));
        assert_eq!(top_level_index(&["self", "a"], 0), Some(1));
        assert_eq!(top_level_index(&["self", "a"], 1), None);
        assert_eq!(top_level_index(&["tokio", "spawn"], 1), None);
        assert_eq!(top_level_index(&["crate"], 1), None);
    }

    #[test]
    fn collects_uses_paths_macros_and_super_but_not_comments_or_tests() {
        let dir = crate_dir("refs", &[
            (
                "src/lib.rs",
                "//! root\npub mod a;\npub mod b;\nmod c;\npub mod d { pub fn f() {} }\n\
                 pub use a::*;\n",
            ),
            (
                "src/a.rs",
                "//! a: crate::b in a comment\n\
                 use crate::{b::X, c};\n\
                 const S: &str = \"crate::d::f\";\n\
                 pub fn g() { crate::d::f(); }\n\
                 #[derive(Default)]\n#[doc = \"crate::b\"]\nstruct W { #[arg(default = crate::c::V)] w: u8 }\n\
                 #[cfg(test)]\nmod tests { use crate::c::Y; }\n\
                 mod inner;\n",
            ),
            (
                "src/a/inner.rs",
                "fn h() { super::super::b::X::new(); super::g(); println!(\"{}\", crate::c::V); }\n",
            ),
            ("src/b.rs", "pub struct X;\nfn k() -> Vec<crate::a::T> { vec![] }\n"),
            ("src/c/mod.rs", "pub const V: u8 = 1;\n#[cfg(test)]\nuse crate::a::T;\n"),
        ]);
        let graph = ModuleGraph::load(&dir.join("src/lib.rs")).unwrap();
        assert_eq!(
            graph.modules.keys().cloned().collect::<Vec<_>>(),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(
            edges(&graph),
            vec![
                // src/a/inner.rs sorts before src/a.rs (path components "a" < "a.rs").
                ("a".into(), "b".into(), "inner.rs".into(), 1),
                ("a".into(), "b".into(), "a.rs".into(), 2),
                ("a".into(), "c".into(), "inner.rs".into(), 1),
                ("a".into(), "c".into(), "a.rs".into(), 2),
                ("a".into(), "c".into(), "a.rs".into(), 7),
                ("a".into(), "d".into(), "a.rs".into(), 4),
                ("b".into(), "a".into(), "b.rs".into(), 2),
            ]
        );
        let ws = Workspace {
            root: dir.clone(),
            packages: Vec::new(),
        };
        let findings = graph.cycle_findings("demo", &ws);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].key, "cycle demo: a, b");
        assert!(findings[0].detail.contains("e.g. a -> b -> a"));
        assert!(findings[0].detail.contains("src/b.rs:2  crate::a::T"));
        assert!(findings[0]
            .detail
            .contains("src/a/inner.rs:1  super::super::b::X::new"));
        let _ = fs::remove_dir_all(&dir);
    }
}
