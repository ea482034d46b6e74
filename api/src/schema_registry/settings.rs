//! Compatibility levels and modes, for the registry and per subject.

use super::RegistryError;

/// How a new version must relate to the subject's earlier ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema reads data written with the latest.
    Backward,
    /// ... with every earlier version.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier version reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward with the latest.
    Full,
    /// Backward and forward with every earlier version.
    FullTransitive,
}

impl Compatibility {
    /// The level of a registry nobody configured (Confluent's default).
    pub const DEFAULT: Compatibility = Compatibility::Backward;

    /// Parses a level name (case-insensitive, as Confluent accepts it).
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        Ok(match raw.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return Err(RegistryError::invalid_compatibility(raw)),
        })
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// The new schema must read old data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Old schemas must read new data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

/// What the registry (or a subject) accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Normal operation.
    ReadWrite,
    /// No registration or deletion.
    ReadOnly,
    /// Registration with explicit ids and versions and no compatibility check, for migrating
    /// from another registry with the ids the existing data carries.
    Import,
}

impl Mode {
    /// The mode of a registry nobody configured.
    pub const DEFAULT: Mode = Mode::ReadWrite;

    /// Parses a mode name.
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        Ok(match raw.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "IMPORT" => Mode::Import,
            _ => return Err(RegistryError::invalid_mode(raw)),
        })
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// Which of a registry's (or subject's) settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// The compatibility level.
    Compatibility,
    /// The mode.
    Mode,
}

impl Setting {
    /// Checks a value against the setting's names (42203, 42204); answers its canonical name.
    pub fn validated(self, raw: &str) -> Result<&'static str, RegistryError> {
        Ok(match self {
            Setting::Compatibility => Compatibility::parse(raw)?.as_str(),
            Setting::Mode => Mode::parse(raw)?.as_str(),
        })
    }

    /// The value of a registry nobody configured.
    pub fn default_value(self) -> &'static str {
        match self {
            Setting::Compatibility => Compatibility::DEFAULT.as_str(),
            Setting::Mode => Mode::DEFAULT.as_str(),
        }
    }
}

/// A version named in a path: a number from 1, or `latest` (also `-1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    /// The highest version (not soft-deleted unless those are asked for).
    Latest,
    /// This version.
    Number(i64),
}

impl VersionSpec {
    /// Parses a path's version.
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        if raw.eq_ignore_ascii_case("latest") || raw == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match raw.parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::invalid_version(raw)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_modes_round_trip() {
        for name in [
            "NONE",
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ] {
            assert_eq!(Compatibility::parse(name).expect("level").as_str(), name);
        }
        assert!(Compatibility::parse("SIDEWAYS").is_err());
        assert_eq!(Mode::parse("import").expect("mode"), Mode::Import);
        assert!(Mode::parse("WRITEONLY").is_err());
        assert!(
            Compatibility::FullTransitive.backward() && Compatibility::FullTransitive.forward()
        );
        assert!(!Compatibility::Forward.backward() && !Compatibility::Forward.transitive());
    }

    #[test]
    fn versions_are_positive_numbers_or_latest() {
        assert_eq!(
            VersionSpec::parse("latest").expect("v"),
            VersionSpec::Latest
        );
        assert_eq!(VersionSpec::parse("-1").expect("v"), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("3").expect("v"), VersionSpec::Number(3));
        for bad in ["0", "-2", "x", "2147483648"] {
            assert!(VersionSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
