//! A small directed graph over string-named nodes: strongly connected components (Tarjan)
//! and one shortest cycle through a component, for the cycle reports.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Directed graph; nodes and edges are kept sorted so that every report is deterministic.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Adds a node (no-op if present).
    pub fn add_node(&mut self, node: &str) {
        self.edges.entry(node.to_owned()).or_default();
    }

    /// Adds the edge `from -> to`, and both nodes.
    pub fn add_edge(&mut self, from: &str, to: &str) {
        self.add_node(to);
        self.edges
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned());
    }

    /// The successors of `node`.
    pub fn successors(&self, node: &str) -> impl Iterator<Item = &str> {
        self.edges
            .get(node)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The strongly connected components that contain a cycle (more than one node, or a
    /// node with an edge to itself), each sorted, in sorted order.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let names: Vec<&str> = self.edges.keys().map(String::as_str).collect();
        let index_of: BTreeMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let adjacency: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                self.successors(n)
                    .filter_map(|s| index_of.get(s).copied())
                    .collect()
            })
            .collect();
        let mut components: Vec<Vec<String>> = tarjan(&adjacency)
            .into_iter()
            .filter(|c| c.len() > 1 || adjacency[c[0]].contains(&c[0]))
            .map(|c| {
                let mut c: Vec<String> = c.into_iter().map(|i| names[i].to_owned()).collect();
                c.sort();
                c
            })
            .collect();
        components.sort();
        components
    }

    /// A shortest cycle from `start` back to `start` using only nodes of `within`, as the
    /// list of nodes visited (`start` first, not repeated at the end).
    pub fn shortest_cycle(&self, start: &str, within: &BTreeSet<&str>) -> Option<Vec<String>> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue: VecDeque<&str> = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in self.successors(node).filter(|s| within.contains(s)) {
                if next == start {
                    let mut path = vec![node.to_owned()];
                    let mut at = node;
                    while at != start {
                        at = previous.get(at)?;
                        path.push(at.to_owned());
                    }
                    path.reverse();
                    return Some(path);
                }
                if !previous.contains_key(next) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// Tarjan's algorithm, iterative (no recursion limit on deep graphs).
fn tarjan(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = adjacency.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut components = Vec::new();
    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        // (node, position of the next successor to look at)
        let mut work = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.last_mut() {
            let node = top.0;
            if let Some(&next) = adjacency[node].get(top.1) {
                top.1 += 1;
                if index[next] == UNVISITED {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::default();
        for (a, b) in edges {
            g.add_edge(a, b);
        }
        g
    }

    #[test]
    fn finds_components_with_cycles_only() {
        let g = graph(&[
            ("a", "b"),
            ("b", "a"),
            ("b", "c"),
            ("c", "d"),
            ("d", "e"),
            ("e", "c"),
            ("f", "f"),
            ("g", "a"),
        ]);
        assert_eq!(
            g.cycles(),
            vec![
                vec!["a".to_owned(), "b".to_owned()],
                vec!["c".to_owned(), "d".to_owned(), "e".to_owned()],
                vec!["f".to_owned()],
            ]
        );
    }

    #[test]
    fn acyclic_graph_has_no_cycles() {
        let g = graph(&[("a", "b"), ("b", "c"), ("a", "c")]);
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn shortest_cycle_stays_inside_the_component() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("b", "a"), ("c", "x")]);
        let within: BTreeSet<&str> = ["a", "b", "c"].into_iter().collect();
        assert_eq!(
            g.shortest_cycle("a", &within),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            g.shortest_cycle("c", &within),
            Some(vec!["c".to_owned(), "a".to_owned(), "b".to_owned()])
        );
    }
}
