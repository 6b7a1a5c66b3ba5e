from uvis.cli.main import main

raise SystemExit(main())
