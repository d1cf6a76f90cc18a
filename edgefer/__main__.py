from edgefer import main

main()
