from mathsft.cli import main

main()
