//! Enums whose variants users name (phases, checks): each variant and its
//! name are written once, and `ALL` and `name()` are made from that list,
//! so a variant added without its name, or left out of `ALL` (and with it
//! out of `--only`, `--until` and the report's numbering), cannot happen.

/// `named_enum! { #[attrs] pub enum E { A => "a", B => "b" } }` declares
/// `E` and gives it `E::ALL` (every variant, in the order listed) and
/// `E::name()`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident { $($variant:ident => $name:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        $vis enum $enum {
            $($variant),+
        }

        impl $enum {
            /// Every one, in the order they are declared.
            pub const ALL: [$enum; [$($name),+].len()] = [$($enum::$variant),+];

            /// What users type and read: `--only`, `--until`, reports.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name),+
                }
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    named_enum! {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Count { One => "one", Two => "two", Three => "three" }
    }

    #[test]
    fn all_and_names_follow_the_list() {
        assert_eq!(Count::ALL, [Count::One, Count::Two, Count::Three]);
        let names: Vec<&str> = Count::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["one", "two", "three"]);
    }
}
