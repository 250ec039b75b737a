//! How deep the shared types of one update nest, worked out without recursion.

use std::collections::HashMap;

use yrs::{ClientID, ID};

use super::{Place, Placed, ShapeError};

/// How deep the shared types an update brings nest inside each other, counted from whatever
/// type outside the update (or root) they are written into.
pub(super) struct TypeNesting<'a> {
    placed: &'a HashMap<ClientID, Vec<Placed>>,
    /// Per block: `None` not yet known, `Some(None)` being worked out, `Some(Some(d))` the depth
    /// of the type the block sits in.
    memo: HashMap<(ClientID, usize), Option<u32>>,
}

/// What a block's container depth follows from.
enum Step {
    Known(u32),
    /// The container depth of that block, plus this.
    Via((ClientID, usize), u32),
}

impl<'a> TypeNesting<'a> {
    pub(super) fn new(placed: &'a HashMap<ClientID, Vec<Placed>>) -> Self {
        TypeNesting {
            placed,
            memo: HashMap::new(),
        }
    }

    /// The block holding clock `id.clock` of `id.client`, if the update brings it.
    fn find(&self, id: &ID) -> Option<(ClientID, usize)> {
        let blocks = self.placed.get(&id.client)?;
        let i = blocks.partition_point(|b| b.end <= id.clock);
        let block = blocks.get(i)?;
        (block.start <= id.clock).then_some((id.client, i))
    }

    fn block(&self, (client, i): (ClientID, usize)) -> &Placed {
        &self.placed[&client][i]
    }

    fn step(&self, at: (ClientID, usize)) -> Step {
        match self.block(at).place {
            Place::Root => Step::Known(0),
            Place::In(id) => match self.find(&id) {
                Some(parent) if self.block(parent).is_type => Step::Via(parent, 1),
                // A container outside the update (its depth is the room's business), or an item
                // that holds no type (`yrs` keeps such a block pending; the room refuses it).
                _ => Step::Known(0),
            },
            Place::Beside(id) => match self.find(&id) {
                Some(neighbour) => Step::Via(neighbour, 0),
                None => Step::Known(0),
            },
        }
    }

    /// The deepest shared type the update brings, counted in levels below the type it writes
    /// into. Works without recursion: chains of neighbours can be as long as the update.
    pub(super) fn depth(mut self, nesting_max: u32) -> Result<u32, ShapeError> {
        let placed = self.placed;
        let mut deepest = 0;
        for (client, blocks) in placed {
            for (i, block) in blocks.iter().enumerate() {
                if !block.is_type {
                    continue;
                }
                let depth = self.container_depth((*client, i))? + 1;
                if depth > nesting_max {
                    return Err(ShapeError::TooDeep {
                        client: client.get(),
                        clock: block.start,
                        max: nesting_max,
                    });
                }
                deepest = deepest.max(depth);
            }
        }
        Ok(deepest)
    }

    fn container_depth(&mut self, start: (ClientID, usize)) -> Result<u32, ShapeError> {
        let mut stack = vec![start];
        while let Some(&at) = stack.last() {
            if let Some(Some(_)) = self.memo.get(&at) {
                stack.pop();
                continue;
            }
            self.memo.insert(at, None);
            match self.step(at) {
                Step::Known(depth) => {
                    self.memo.insert(at, Some(depth));
                    stack.pop();
                }
                Step::Via(next, add) => match self.memo.get(&next) {
                    Some(Some(depth)) => {
                        self.memo.insert(at, Some(depth.saturating_add(add)));
                        stack.pop();
                    }
                    Some(None) => {
                        let (client, i) = next;
                        return Err(ShapeError::Cycle {
                            client: client.get(),
                            clock: self.block((client, i)).start,
                        });
                    }
                    None => stack.push(next),
                },
            }
        }
        Ok(self.memo.get(&start).copied().flatten().unwrap_or(0))
    }
}
