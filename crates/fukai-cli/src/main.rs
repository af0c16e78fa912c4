fn main() {
    println!("fukai {}", env!("CARGO_PKG_VERSION"));
}
