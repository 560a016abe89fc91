import GRDBSQLite
import NetacctKit

/// An error from SQLite, naming the file, what was being done and SQLite's own words.
public struct SQLiteError: UserFacingError {
    /// SQLite's extended result code (SQLITE_FULL, SQLITE_READONLY, SQLITE_NOTADB, ...).
    public var code: Int32
    public var message: String
    public var kind: ErrorKind { code & 0xFF == SQLITE_PERM || code & 0xFF == SQLITE_AUTH ? .permission : .failure }
    /// The primary result code, which callers match (`SQLITE_FULL`, `SQLITE_READONLY`, ...).
    public var primary: Int32 { code & 0xFF }
    public var description: String { message }
}

/// One connection to an SQLite database, over Debian's libsqlite3 (the module map is
/// GRDB.swift's GRDBSQLite; GRDB's record layer is not used: it needs Foundation, which netacct
/// keeps out). Used by one thread at a time.
public final class SQLiteDatabase {
    public enum Mode: Sendable { case readWrite, readOnly }

    let handle: OpaquePointer
    public let path: String

    public init(path: String, mode: Mode) throws {
        self.path = path
        var handle: OpaquePointer?
        let flags = (mode == .readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &handle, flags, nil)
        guard result == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(result))
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: result, message: "Cannot open \(path): \(message)")
        }
        self.handle = handle
        sqlite3_extended_result_codes(handle, 1)
        // A writer holding the lock for a moment (the daemon's transaction) is waited for.
        sqlite3_busy_timeout(handle, 5_000)
    }

    deinit { sqlite3_close_v2(handle) }

    func error(_ result: Int32, _ doing: String) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(handle), message: "\(doing) \(path) failed: \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// Runs statements that return nothing (several, separated by semicolons).
    public func execute(_ sql: String) throws {
        let result = sqlite3_exec(handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw error(result, "Writing") }
    }

    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var statement: OpaquePointer?
        let result = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard result == SQLITE_OK, let statement else { throw error(result, "Reading") }
        return SQLiteStatement(statement, database: self)
    }

    /// The single integer a query returns (a PRAGMA, a count), or nil when it returns no row.
    public func integer(_ sql: String) throws -> Int64? {
        let statement = try prepare(sql)
        return try statement.step() ? statement.int64(0) : nil
    }

    /// Runs `body` in one transaction: all of it is written, or none (an error rolls back).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A prepared statement: bind, step, read columns, reset.
public final class SQLiteStatement {
    let handle: OpaquePointer
    let database: SQLiteDatabase

    init(_ handle: OpaquePointer, database: SQLiteDatabase) {
        self.handle = handle
        self.database = database
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds values to ?1, ?2, ... in order, after a reset.
    public func bind(_ values: SQLiteValue...) throws { try bind(values) }

    public func bind(_ values: [SQLiteValue]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let result = switch value {
            case .integer(let number): sqlite3_bind_int64(handle, position, number)
            case .text(let text): sqlite3_bind_text(handle, position, text, -1, SQLITE_TRANSIENT)
            case .blob(let bytes): bytes.withUnsafeBytes { sqlite3_bind_blob(handle, position, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
            case .null: sqlite3_bind_null(handle, position)
            }
            guard result == SQLITE_OK else { throw database.error(result, "Binding for") }
        }
    }

    /// The next row: true while there is one.
    public func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let result: throw database.error(result, "Stepping through")
        }
    }

    /// Binds and runs a statement that returns nothing.
    public func run(_ values: SQLiteValue...) throws {
        try bind(values)
        while try step() {}
    }

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func uint64(_ column: Int32) -> UInt64 { UInt64(bitPattern: sqlite3_column_int64(handle, column)) }
    /// The BLOB in `column`, valid during `body` only.
    public func blob<T>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        return try body(UnsafeRawBufferPointer(start: pointer, count: pointer == nil ? 0 : count))
    }

    public func text(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: text)
    }
}

public enum SQLiteValue {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
    case null

    public static func unsigned(_ value: UInt64) -> SQLiteValue { .integer(Int64(bitPattern: value)) }
}

/// SQLite's SQLITE_TRANSIENT (a macro Swift cannot import): it copies the text at once.
let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
