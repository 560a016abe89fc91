/// netacct's version: the one place it is written. `netacct --version` prints it, and
/// `scripts/package` names the .deb by what that prints.
enum NetacctVersion {
    static let string = "0.26.0"
}
